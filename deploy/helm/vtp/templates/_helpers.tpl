{{/* Names, labels and the values every pod shares. */}}

{{- define "vtp.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vtp.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Takes (dict "root" $ "component" NAME). */}}
{{- define "vtp.labels" -}}
{{ include "vtp.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Takes an image value (repository, tag) and the root context. */}}
{{- define "vtp.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* The stream and consumer names the services use, generated from Python (deploy/generate.py). */}}
{{- define "vtp.contracts" -}}
{{- .Files.Get "files/contracts.yaml" -}}
{{- end -}}

{{- define "vtp.configMapName" -}}
{{- include "vtp.fullname" . }}-config
{{- end -}}

{{- define "vtp.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-env" (include "vtp.fullname" .)) -}}
{{- end -}}

{{- define "vtp.callbackKeysSecretName" -}}
{{- .Values.callbackKeys.existingSecret | default (printf "%s-callback-keys" (include "vtp.fullname" .)) -}}
{{- end -}}

{{- define "vtp.eventsUrl" -}}
{{- .Values.eventsUrl | default (printf "http://%s-events.%s.svc:%v" (include "vtp.fullname" .) .Release.Namespace .Values.events.service.port) -}}
{{- end -}}

{{/*
The environment of a pod: the ConfigMap, then (for the services) the Secret, then the role's NATS
credentials, which win over both. Takes (dict "root" $ "secret" BOOL "credentials" SECRET-NAME).
*/}}
{{- define "vtp.envFrom" -}}
- configMapRef:
    name: {{ include "vtp.configMapName" .root }}
{{- if .secret }}
- secretRef:
    name: {{ include "vtp.secretName" .root }}
{{- end }}
{{- if .credentials }}
- secretRef:
    name: {{ .credentials }}
{{- end }}
{{- end -}}

{{/* A map of environment variables as an `env` list. */}}
{{- define "vtp.envList" -}}
{{- range $name, $value := . }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The OpenTelemetry SDK's standard variables, for every pod that runs platform code (services, the hook Job,
runners, which pass them on to their trainers), as an `env` list; empty unless `otel.endpoint` is set.
Takes the root context.
*/}}
{{- define "vtp.otelEnv" -}}
{{- with .Values.otel }}
{{- if .endpoint }}
{{- $attributes := list }}
{{- range $name, $value := merge (deepCopy (.resourceAttributes | default dict)) (dict "k8s.namespace.name" $.Release.Namespace) }}
{{- $attributes = append $attributes (printf "%s=%v" $name $value) }}
{{- end }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ .protocol | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ .sampler | quote }}
{{- if ne (toString .samplerArg) "" }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .samplerArg | toString | quote }}
{{- end }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ join "," $attributes | quote }}
{{- end }}
{{- end }}
{{- end -}}
