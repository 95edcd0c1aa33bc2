{{/*
A service of the platform (`vtp serve <component>`): its Deployment and Service, and for an HTTP service
its CPU HorizontalPodAutoscaler. Takes
  (dict "root" $ "component" NAME "autoscaled" BOOL "env" ENV-MAP "callbackKey" (dict "file" F "env" VAR)):
`env` holds the service's listen settings, which win over `<component>.env` (they must match its ports);
`callbackKey` names the one callback key file the service may read. An HTTP service (`<component>.port`)
serves /metrics there; one without (the scheduler) on `<component>.metricsPort`, its port `metrics`.
*/}}
{{- define "vtp.service" -}}
{{- $root := .root -}}
{{- $component := .component -}}
{{- $values := index $root.Values $component -}}
{{- $name := printf "%s-%s" (include "vtp.fullname" $root) $component -}}
{{- $context := dict "root" $root "component" $component -}}
{{- $env := merge (deepCopy (.env | default dict)) $values.env -}}
{{- $otel := include "vtp.otelEnv" $root | trim -}}
{{- $metricsPort := $values.port | default $values.metricsPort -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  labels:
    {{- include "vtp.labels" $context | nindent 4 }}
spec:
  {{- /* An autoscaler owns the replica count; setting it here would reset it on every upgrade. */}}
  {{- if not .autoscaled }}
  replicas: {{ $values.replicas }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "vtp.selectorLabels" $context | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "vtp.labels" $context | nindent 8 }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
        checksum/secrets: {{ include (print $root.Template.BasePath "/secrets.yaml") $root | sha256sum }}
        {{- if and $metricsPort $root.Values.metrics.podAnnotations }}
        # For a Prometheus that discovers pods by annotation (observability/prometheus/prometheus-kubernetes.yaml).
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $metricsPort | quote }}
        prometheus.io/path: /metrics
        {{- end }}
    spec:
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ $component }}
          image: {{ include "vtp.image" (dict "image" $root.Values.image "root" $root) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: [serve, {{ $component }}]
          envFrom:
            {{- include "vtp.envFrom" (dict "root" $root "secret" true "credentials" (index $root.Values.nats.credentialsSecrets $component)) | nindent 12 }}
          {{- if or $env .callbackKey $otel }}
          env:
            {{- include "vtp.envList" $env | trim | nindent 12 }}
            {{- with .callbackKey }}
            - name: {{ .env }}
              value: /etc/vtp/callback/{{ .file }}
            {{- end }}
            {{- with $otel }}
            {{- . | nindent 12 }}
            {{- end }}
          {{- end }}
          {{- if or $values.port $values.metricsPort }}
          ports:
            {{- with $values.port }}
            - name: http
              containerPort: {{ . }}
            {{- end }}
            {{- with $values.metricsPort }}
            - name: metrics
              containerPort: {{ . }}
            {{- end }}
          {{- end }}
          {{- with $values.livenessProbe }}
          livenessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $values.readinessProbe }}
          readinessProbe:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          resources:
            {{- toYaml $values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .callbackKey }}
            - name: callback-key
              mountPath: /etc/vtp/callback
              readOnly: true
            {{- end }}
      volumes:
        # The root filesystem is read-only; VTP_DATA_DIR and temporary files live here.
        - name: tmp
          emptyDir: {}
        {{- with .callbackKey }}
        - name: callback-key
          secret:
            secretName: {{ include "vtp.callbackKeysSecretName" $root }}
            # Only this service's key: the events service never sees the signing key.
            items:
              - key: {{ .file }}
                path: {{ .file }}
        {{- end }}
{{- if $metricsPort }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  labels:
    {{- include "vtp.labels" $context | nindent 4 }}
    # The `job` label of its targets, whatever the release is called (metrics.serviceMonitor).
    vtp.dev/metrics-job: vtp-{{ $component }}
spec:
  {{- if $values.port }}
  type: {{ $values.service.type }}
  {{- else }}
  # Only for finding each replica's metrics port: no traffic goes through it.
  clusterIP: None
  {{- end }}
  selector:
    {{- include "vtp.selectorLabels" $context | nindent 4 }}
  ports:
    {{- if $values.port }}
    - name: http
      port: {{ $values.service.port }}
      targetPort: http
    {{- end }}
    {{- with $values.metricsPort }}
    - name: metrics
      port: {{ . }}
      targetPort: metrics
    {{- end }}
{{- end }}
{{- if and $values.port .autoscaled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $name }}
  labels:
    {{- include "vtp.labels" $context | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $name }}
  minReplicas: {{ $values.autoscaling.minReplicas }}
  maxReplicas: {{ $values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}
