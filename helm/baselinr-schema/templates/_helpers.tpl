{{/* Name of the BaselinrSchema: schema name value, else the release name. */}}
{{- define "baselinr-schema.resourceName" -}}
{{- default .Release.Name .Values.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of the hook's Job, ServiceAccount, Role and RoleBinding. */}}
{{- define "baselinr-schema.hookName" -}}
{{- printf "%s-schema-wait" (include "baselinr-schema.resourceName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "baselinr-schema.serviceAccountName" -}}
{{- if .Values.wait.serviceAccount.create }}
{{- include "baselinr-schema.hookName" . }}
{{- else }}
{{- required "wait.serviceAccount.name is required when wait.serviceAccount.create is false" .Values.wait.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "baselinr-schema.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: schema-hook
{{- end }}

{{/* Annotations of the hook's supporting objects: created first, removed after success. */}}
{{- define "baselinr-schema.supportHook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end }}

{{/* The BaselinrSchema spec (without targetVersion) as JSON: only the values that are set. */}}
{{- define "baselinr-schema.specJson" -}}
{{- $spec := dict "configSecretRef" (dict "name" (required "configSecretRef.name is required: the Secret holding Baselinr's config.yml" .Values.configSecretRef.name) "key" (default "config.yml" .Values.configSecretRef.key)) }}
{{- with .Values.image }}{{ $_ := set $spec "image" . }}{{ end }}
{{- $backup := dict "mode" (default "Required" .Values.backup.mode) }}
{{- with .Values.backup.volume }}{{ $_ := set $backup "volume" . }}{{ end }}
{{- with .Values.backup.subPath }}{{ $_ := set $backup "subPath" . }}{{ end }}
{{- with .Values.backup.keep }}{{ $_ := set $backup "keep" (int .) }}{{ end }}
{{- with .Values.backup.objectStore }}{{ if .bucket }}
{{- $store := dict "bucket" .bucket }}
{{- range $k := list "prefix" "endpoint" "region" "credentialsSecretRef" }}{{ with index $.Values.backup.objectStore $k }}{{ $_ := set $store $k . }}{{ end }}{{ end }}
{{- $_ := set $backup "objectStore" $store }}
{{- end }}{{ end }}
{{- if and (ne $backup.mode "Skip") (not .Values.backup.volume) (not (hasKey $backup "objectStore")) }}
{{- fail "backup.volume or backup.objectStore.bucket is required unless backup.mode is Skip (e.g. {persistentVolumeClaim: {claimName: baselinr-backups}})" }}
{{- end }}
{{- $_ := set $spec "backup" $backup }}
{{- if .Values.allowDowngrade }}{{ $_ := set $spec "allowDowngrade" true }}{{ end }}
{{- with .Values.validateInterval }}{{ $_ := set $spec "validateInterval" . }}{{ end }}
{{- if not (kindIs "invalid" .Values.backoffLimit) }}{{ $_ := set $spec "backoffLimit" (int .Values.backoffLimit) }}{{ end }}
{{- with .Values.activeDeadlineSeconds }}{{ $_ := set $spec "activeDeadlineSeconds" (int .) }}{{ end }}
{{- with .Values.jobTemplate }}{{ $_ := set $spec "jobTemplate" . }}{{ end }}
{{- toJson $spec }}
{{- end }}
