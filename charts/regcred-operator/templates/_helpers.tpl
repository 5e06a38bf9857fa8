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
app.kubernetes.io/name: {{ include "regcred-operator.name" . }}
{{ include "regcred-operator.releaseLabels" . }}
{{- end -}}

{{/* Helm's own labels alone, for objects config/ labels with nothing. */}}
{{- define "regcred-operator.releaseLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The webhook's object names are the operator's defaults for the default release name;
another release passes its own (an empty line otherwise). */}}
{{- define "regcred-operator.webhookNameArgs" -}}
{{- $full := include "regcred-operator.fullname" . -}}
{{- if ne $full .Chart.Name -}}
- --pod-webhook-service={{ $full }}-webhook
- --pod-webhook-cert-secret={{ $full }}-webhook-tls
{{- if not .Values.podWebhook.certManager.enabled }}
- --pod-webhook-configuration={{ $full }}-pod-webhook
{{- end }}
{{- end -}}
{{- end -}}

{{- define "regcred-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
