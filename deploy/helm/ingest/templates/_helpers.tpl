{{/* Names ---------------------------------------------------------------------------------- */}}
{{- define "ingest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name, at most 50 characters: an Indexed Job's pod hostnames are
"<name>-<index>" and must stay within a 63-character DNS label. */}}
{{- define "ingest.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ingest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ingest.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels (helm.sh/docs/chart_best_practices/labels) -------------------------------------- */}}
{{- define "ingest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ingest.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "ingest.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ingest.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ingest
{{- end -}}

{{- define "ingest.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Values derived from the service config ------------------------------------------------ */}}
{{/* The metrics/health port: config.http_port (the service's default is 8080). */}}
{{- define "ingest.httpPort" -}}
{{- int (default 8080 .Values.config.http_port) -}}
{{- end -}}

{{/* Drain deadline rounded up to whole seconds, plus the margin (service default: 20 s). */}}
{{- define "ingest.gracePeriod" -}}
{{- $drain := default 20 .Values.config.drain_timeout_s -}}
{{- add (int (ceil $drain)) (int .Values.terminationGraceMarginSeconds) -}}
{{- end -}}

{{- define "ingest.testId" -}}
{{- default .Release.Name .Values.loadtest.testId -}}
{{- end -}}

{{/* Reports sit at the volume's root (writable through fsGroup), named after the run id:
<mountPath>/<testId>-<index>.json, merged into <mountPath>/<testId>-merged.json. */}}
{{- define "ingest.reportPrefix" -}}
{{- printf "%s/%s" (trimSuffix "/" .Values.loadtest.reports.mountPath) (include "ingest.testId" .) -}}
{{- end -}}

{{- define "ingest.reportsClaim" -}}
{{- default (printf "%s-reports" (include "ingest.fullname" .)) .Values.loadtest.reports.existingClaim -}}
{{- end -}}

{{/* A number as the CLI and TOML read it: whole values without a fraction (YAML numbers arrive
as float64, and 1000000 would otherwise print as 1e+06). */}}
{{- define "ingest.number" -}}
{{- if eq (float64 (int64 .)) (float64 .) -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- end -}}

{{/* The TOML profile: one `key = value` line per set key of .Values.config, sorted. Strings are
JSON-quoted (a JSON string is a valid TOML basic string); null means "leave unset". */}}
{{- define "ingest.toml" -}}
{{- range $key := keys .Values.config | sortAlpha }}
{{- $value := get $.Values.config $key }}
{{- if kindIs "invalid" $value }}
{{- else if kindIs "bool" $value }}
{{ $key }} = {{ $value }}
{{- else if kindIs "string" $value }}
{{ $key }} = {{ toJson $value }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}
{{ $key }} = {{ include "ingest.number" $value }}
{{- else }}
{{- fail (printf "config.%s: expected a string, number or boolean, got %s" $key (kindOf $value)) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod pieces shared by both modes ------------------------------------------------------- */}}
{{- define "ingest.podSecurityContext" -}}
# The image's numeric non-root user (Dockerfile: USER 10001:10001).
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ingest.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "ingest.commonEnv" -}}
- name: INGEST_CONFIG
  value: /etc/ingest/ingest.toml
# The image sets these three in its environment, which outranks the TOML file: mirror the
# config's values so the file's choice is the one that holds.
- name: INGEST_HTTP_HOST
  value: "0.0.0.0"
- name: INGEST_HTTP_PORT
  value: {{ include "ingest.httpPort" . | quote }}
- name: INGEST_LOG_FORMAT
  value: {{ default "json" .Values.config.log_format | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ingest.podSpecCommon" -}}
serviceAccountName: {{ include "ingest.serviceAccountName" . }}
automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
terminationGracePeriodSeconds: {{ include "ingest.gracePeriod" . }}
securityContext:
  {{- include "ingest.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
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
{{- with .Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "ingest.envFrom" -}}
envFrom:
  - secretRef:
      name: {{ .Values.aws.existingSecret }}
{{- end -}}

{{/* Writable scratch space on a read-only root: /tmp (temporary files) and /data (the image's
data directory: local emulator output, spool). */}}
{{- define "ingest.scratchMounts" -}}
- name: config
  mountPath: /etc/ingest
  readOnly: true
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /data
{{- end -}}

{{- define "ingest.scratchVolumes" -}}
- name: config
  configMap:
    name: {{ include "ingest.fullname" . }}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end -}}

{{/* Merge and verify, as one shell line (the merge-verify test pod runs it; NOTES print it). */}}
{{- define "ingest.mergeCommand" -}}
{{- $prefix := include "ingest.reportPrefix" . -}}
ingest loadtest merge
{{- range $i := until (int .Values.replicas) }} {{ $prefix }}-{{ $i }}.json{{ end }} --report {{ $prefix }}-merged.json
{{- end -}}

{{- define "ingest.verifyCommand" -}}
ingest verify --report {{ include "ingest.reportPrefix" . }}-merged.json --s3 {{ default "s3://<bucket>/<prefix>" .Values.loadtest.verify.s3 }}
{{- end -}}

{{- define "ingest.mergeVerify" -}}
python -m {{ include "ingest.mergeCommand" . }}
{{- if .Values.loadtest.verify.s3 }}
python -m {{ include "ingest.verifyCommand" . }}
{{- end }}
{{- end -}}
