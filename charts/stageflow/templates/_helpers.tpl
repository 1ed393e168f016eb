{{/* Names, labels and the pieces every template shares. */}}
{{- define "stageflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stageflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "stageflow.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "stageflow.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stageflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "stageflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: stageflow
{{- end -}}

{{- define "stageflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stageflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "stageflow.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "stageflow.apiServiceAccount" -}}
{{- default (printf "%s-api" (include "stageflow.fullname" .)) .Values.serviceAccount.apiName -}}
{{- end -}}

{{- define "stageflow.operatorServiceAccount" -}}
{{- default (printf "%s-operator" (include "stageflow.fullname" .)) .Values.serviceAccount.operatorName -}}
{{- end -}}

{{- define "stageflow.redisUrl" -}}
{{- if .Values.redis.bundled -}}
redis://{{ if .Values.redis.auth }}:$(REDIS_PASSWORD)@{{ end }}{{ include "stageflow.fullname" . }}-redis:6379/0
{{- else -}}
{{- .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* Redis's password (from the chart's Secret) before STAGEFLOW_REDIS_URL, which uses it. */}}
{{- define "stageflow.redisEnv" -}}
{{- if and .Values.redis.bundled .Values.redis.auth }}
- name: REDIS_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "stageflow.fullname" . }}-redis, key: password}}
{{- end }}
- {name: STAGEFLOW_REDIS_URL, value: {{ include "stageflow.redisUrl" . | quote }}}
{{- end -}}

{{/* What a task may run, and where http_get may connect: the API and the operator agree. */}}
{{- define "stageflow.policyEnv" -}}
- {name: STAGEFLOW_TASK_IMAGE, value: {{ .Values.tasks.image | default (include "stageflow.image" .) | quote }}}
- {name: STAGEFLOW_TASK_IMAGES, value: {{ join "," .Values.tasks.allowedImages | quote }}}
- {name: STAGEFLOW_TASK_SERVICE_ACCOUNTS, value: {{ join "," .Values.tasks.allowedServiceAccounts | quote }}}
- {name: STAGEFLOW_HTTP_ALLOW, value: {{ join "," .Values.http.allow | quote }}}
- {name: STAGEFLOW_HTTP_DENY, value: {{ join "," .Values.http.deny | quote }}}
{{- end -}}

{{/* The pod-level parts common to the API, the operator and the helm test. */}}
{{- define "stageflow.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
