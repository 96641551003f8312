{{/* The chart name, or nameOverride. */}}
{{- define "mlcycle.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* release-chart (or fullnameOverride), the prefix of every resource name. */}}
{{- define "mlcycle.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "mlcycle.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "mlcycle.labels" -}}
helm.sh/chart: {{ include "mlcycle.chart" . }}
{{ include "mlcycle.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: mlcycle
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "mlcycle.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlcycle.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels and selector labels of one component: (dict "root" $ "component" "operator"). */}}
{{- define "mlcycle.componentLabels" -}}
{{ include "mlcycle.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlcycle.componentSelectorLabels" -}}
{{ include "mlcycle.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlcycle.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "mlcycle.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces the operator serves: empty when it serves all of them. */}}
{{- define "mlcycle.watchNamespaces" -}}
{{- if not .Values.operator.clusterWide }}
{{- default (list .Release.Namespace) .Values.operator.watchNamespaces | uniq | join "," }}
{{- end }}
{{- end }}

{{/* MLflow as pods and the operator reach it. */}}
{{- define "mlcycle.mlflowURL" -}}
{{- if .Values.mlflow.trackingURI }}
{{- .Values.mlflow.trackingURI }}
{{- else if .Values.mlflow.enabled }}
{{- printf "http://%s-mlflow.%s.svc:%d" (include "mlcycle.fullname" .) .Release.Namespace (int .Values.mlflow.service.port) }}
{{- else }}
{{- fail "mlflow.trackingURI is required when mlflow.enabled is false" }}
{{- end }}
{{- end }}

{{/* The S3 endpoint as pods, MLflow and the operator reach it. */}}
{{- define "mlcycle.s3Endpoint" -}}
{{- if .Values.s3.endpoint }}
{{- .Values.s3.endpoint }}
{{- else if .Values.minio.enabled }}
{{- printf "http://%s-minio.%s.svc:%d" (include "mlcycle.fullname" .) .Release.Namespace (int .Values.minio.service.port) }}
{{- else }}
{{- fail "s3.endpoint is required when minio.enabled is false" }}
{{- end }}
{{- end }}

{{/* The Secret with the S3 credentials (in the release namespace and every served one). */}}
{{- define "mlcycle.s3SecretName" -}}
{{- default (printf "%s-s3" (include "mlcycle.fullname" .)) .Values.s3.existingSecret }}
{{- end }}

{{/* The Secret with MLflow's admin user (the operator's, and the embedded MLflow's). */}}
{{- define "mlcycle.mlflowAdminSecretName" -}}
{{- default (printf "%s-mlflow-admin" (include "mlcycle.fullname" .)) .Values.mlflow.admin.existingSecret }}
{{- end }}

{{- define "mlcycle.image" -}}
{{- printf "%s:%s" .image.repository (default .root.Chart.AppVersion .image.tag) }}
{{- end }}

{{/* S3 credentials and endpoint as environment variables, for boto3 and MLflow. */}}
{{- define "mlcycle.s3Env" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "mlcycle.s3SecretName" . }}
      key: {{ .Values.s3.accessKeyKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "mlcycle.s3SecretName" . }}
      key: {{ .Values.s3.secretKeyKey }}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.s3.region | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ include "mlcycle.s3Endpoint" . | quote }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ include "mlcycle.s3Endpoint" . | quote }}
{{- end }}

{{/* Scheduling constraints shared by every pod of the chart. */}}
{{- define "mlcycle.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* helm.sh/resource-policy: keep on data the user asked to keep. */}}
{{- define "mlcycle.keepAnnotation" -}}
{{- if . }}
annotations:
  helm.sh/resource-policy: keep
{{- end }}
{{- end }}
