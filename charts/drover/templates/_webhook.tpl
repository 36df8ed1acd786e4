{{/*
SidecarSet injection webhook: names and the manager's arguments, ports and
volumes (included by deployment.yaml).
*/}}
{{- define "drover.webhookServiceName" -}}
{{- printf "%s-webhook" (include "drover.managerName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "drover.webhookSecretName" -}}
{{- printf "%s-webhook-cert" (include "drover.managerName" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "drover.webhookConfigName" -}}
{{- default (printf "%s-sidecar-injector" (include "drover.fullname" .)) .Values.webhook.configName | trunc 253 }}
{{- end }}

{{- define "drover.webhookArgs" -}}
{{- if .Values.webhook.enabled }}
- --webhook-bind-address=:{{ int .Values.webhook.port }}
- --webhook-service={{ .Release.Namespace }}/{{ include "drover.webhookServiceName" . }}
- --webhook-service-port={{ int .Values.webhook.service.port }}
- --webhook-cert-secret={{ .Release.Namespace }}/{{ include "drover.webhookSecretName" . }}
- --webhook-cert-rotation={{ not .Values.webhook.certManager.enabled }}
- --webhook-config-name={{ include "drover.webhookConfigName" . }}
- --webhook-failure-policy={{ .Values.webhook.failurePolicy }}
{{- else }}
- --webhook-bind-address=0
{{- end }}
{{- end }}

{{- define "drover.webhookPorts" -}}
{{- if .Values.webhook.enabled }}
- name: webhook
  containerPort: {{ int .Values.webhook.port }}
  protocol: TCP
{{- end }}
{{- end }}
