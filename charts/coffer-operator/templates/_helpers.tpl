{{/* The chart name, or nameOverride. */}}
{{- define "coffer-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of every object: release-chart, or fullnameOverride. */}}
{{- define "coffer-operator.fullname" -}}
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

{{/* The operator's image, which is also the image of every Tenant without spec.image (the
     operator is told it in COFFER_DEFAULT_IMAGE): upgrading the chart upgrades those Tenants. */}}
{{- define "coffer-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "coffer-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "coffer-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: coffer
{{- end }}

{{/* Labels that select the operator pods. */}}
{{- define "coffer-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coffer-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "coffer-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "coffer-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces the operator watches (watchNamespaces plus the older watchNamespace), each
     once; empty means all namespaces. */}}
{{- define "coffer-operator.watchNamespaces" -}}
{{- $namespaces := concat (.Values.watchNamespaces | default list) (compact (list .Values.watchNamespace)) | uniq }}
{{- join "," $namespaces }}
{{- end }}
