{{/* The chart's name. */}}
{{- define "regcred-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name when it already says regcred-operator (the default install
names everything regcred-operator, as config/ does), else <release>-regcred-operator. */}}
{{- define "regcred-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* regcred-view / regcred-edit for the default install, <fullname>-view / -edit otherwise. */}}
{{- define "regcred-operator.userRolePrefix" -}}
{{- $full := include "regcred-operator.fullname" . -}}
{{- if eq $full .Chart.Name -}}regcred{{- else -}}{{ $full }}{{- end -}}
{{- end -}}

{{- define "regcred-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "regcred-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "regcred-operator.labels" -}}
{{ include "regcred-operator.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "regcred-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
