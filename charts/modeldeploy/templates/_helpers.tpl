{{/* Names and labels shared by every template. */}}

{{- define "modeldeploy.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release name alone when it already says "modeldeploy", so a release named
     modeldeploy gives objects named modeldeploy, not modeldeploy-modeldeploy. */}}
{{- define "modeldeploy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "modeldeploy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "modeldeploy.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modeldeploy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "modeldeploy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modeldeploy
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "modeldeploy.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modeldeploy.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modeldeploy.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The operator's name for its peering object (operator_main.PEERING_NAME). */}}
{{- define "modeldeploy.peeringName" -}}
modeldeploy
{{- end -}}

{{/* Rules the operator needs wherever it serves ModelDeployments, namespaced or not.
     Each verb is one the operator calls (operator/modeldeploy_operator/edge/kube.py) or that kopf
     calls for it; the e2e tier runs the whole lifecycle with exactly these. */}}
{{- define "modeldeploy.servingRules" -}}
# kopf: list+watch to follow ModelDeployments; patch for its progress annotations,
# finalizer and the status subresource. Nothing reads a single object or replaces one.
- apiGroups: ["modeldeploy.dev"]
  resources: ["modeldeployments"]
  verbs: ["list", "watch", "patch"]
- apiGroups: ["modeldeploy.dev"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# The Ray head and GPU worker pods: read, create, list a deployment's workers, delete
# (scale down, or replace a pod whose spec changed; pods are immutable).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "create", "delete"]
# The head and endpoint Services: list a deployment's, create, replace when they drift from the
# spec. The namespace's gateway Service (modeldeploy-gateway) is also deleted again when no
# ModelDeployment asks for it.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "create", "update", "delete"]
# The gateway's config and its pod's Deployment, kept like its Service; the gateway itself gets
# no API access: its config and the Secrets it reads are mounted. ConfigMaps are also read for
# spec.model.digests.configMapRef (the digest manifest replicas verify) and
# spec.preflight.configMapRef (the model's config.json for the fit check).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "create", "update", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "create", "update", "delete"]
# The optional NetworkPolicies (networkPolicy.enabled): list a deployment's, create, replace
# when they drift, delete the ones no longer wanted. Granted with the feature off too, so an
# operator restarted without it removes the policies an earlier run made.
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["list", "create", "update", "delete"]
# spec.model.tokenSecretRef is checked to exist and hold its key (keys only, never values).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# kopf posts the operator's Kubernetes events (Created, InsufficientGPU, ...).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* kopf's peering: list+watch to see the other replicas, patch to post its own keep-alive. */}}
{{- define "modeldeploy.peeringRule" -}}
- apiGroups: ["kopf.dev"]
  resources: [{{ . | quote }}]
  verbs: ["list", "watch", "patch"]
{{- end -}}

{{/* kopf's cluster-scoped reads: CRDs (to notice the ModelDeployment CRD appear or change).
     When serving listed namespaces, kopf also lists+watches namespaces to follow them. */}}
{{- define "modeldeploy.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}
