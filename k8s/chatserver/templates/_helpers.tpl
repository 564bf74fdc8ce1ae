{{/*
Names, labels and the computed settings every template shares. The chart keeps its logic here, so
each manifest template reads as the resource it renders.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "chatserver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, else "<release>-<chart>", or just the release
name when it already contains the chart name. 63 characters: Kubernetes' DNS label limit.
*/}}
{{- define "chatserver.fullname" -}}
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

{{- define "chatserver.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every resource. */}}
{{- define "chatserver.labels" -}}
helm.sh/chart: {{ include "chatserver.chart" . }}
{{ include "chatserver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: altzone
{{- end }}

{{/* The labels that select the pods: never change them, a Deployment's selector is immutable. */}}
{{- define "chatserver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chatserver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "chatserver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "chatserver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "chatserver.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Secret the pods read JWT_SECRET, MONGODB_URL, REDIS_URL and CHAT_INTERNAL_TOKEN from: the
operator's existingSecret, else the one this chart creates. Neither is a mistake worth a clear stop.
*/}}
{{- define "chatserver.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else if .Values.secrets.create }}
{{- include "chatserver.fullname" . }}
{{- else }}
{{- fail "secrets: set secrets.existingSecret to a Secret you manage, or secrets.create=true with secrets.values" }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the chart renders its own Secret. */}}
{{- define "chatserver.createSecret" -}}
{{- if and .Values.secrets.create (not .Values.secrets.existingSecret) }}true{{ end }}
{{- end }}

{{/*
CHAT_ROOT_PATH: config.CHAT_ROOT_PATH, else ingress.pathPrefix, so the app serves every route under
the public prefix the Ingress routes to it. Two different prefixes cannot both be right.
*/}}
{{- define "chatserver.rootPath" -}}
{{- $configured := .Values.config.CHAT_ROOT_PATH | default "" }}
{{- $prefix := .Values.ingress.pathPrefix | default "" }}
{{- if and $configured $prefix (ne $configured $prefix) }}
{{- fail (printf "config.CHAT_ROOT_PATH (%s) and ingress.pathPrefix (%s) differ: set only ingress.pathPrefix" $configured $prefix) }}
{{- end }}
{{- default $prefix $configured }}
{{- end }}

{{/*
The ConfigMap's data: every non-empty config value as a string. Whole numbers go through int64
because values arrive as float64 and would otherwise print as 2e+05; rates may be fractional.
*/}}
{{- define "chatserver.configData" -}}
{{- $data := dict }}
{{- range $name, $value := .Values.config }}
{{- if kindIs "bool" $value }}
{{- $_ := set $data $name (ternary "true" "false" $value) }}
{{- else if or (kindIs "int64" $value) (kindIs "int" $value) }}
{{- $_ := set $data $name (toString $value) }}
{{- else if kindIs "float64" $value }}
{{- if eq $value (float64 (int64 $value)) }}
{{- $_ := set $data $name (toString (int64 $value)) }}
{{- else }}
{{- $_ := set $data $name (toString $value) }}
{{- end }}
{{- else if and (not (kindIs "invalid" $value)) (ne (toString $value) "") }}
{{- $_ := set $data $name (toString $value) }}
{{- end }}
{{- end }}
{{- if and .Values.blocklist.terms (not (get $data "CHAT_BLOCKLIST_FILE")) }}
{{- $_ := set $data "CHAT_BLOCKLIST_FILE" "/etc/chatserver/blocklist/blocklist.txt" }}
{{- end }}
{{- $rootPath := include "chatserver.rootPath" . }}
{{- if $rootPath }}
{{- $_ := set $data "CHAT_ROOT_PATH" $rootPath }}
{{- else }}
{{- $_ := unset $data "CHAT_ROOT_PATH" }}
{{- end }}
{{- toYaml $data }}
{{- end }}

{{/*
terminationGracePeriodSeconds: the preStop sleep runs first and counts against the grace period,
then SIGTERM gives the app CHAT_DRAIN_SECONDS to close its sockets with 1012. An explicit value
below their sum would SIGKILL pods mid-drain, so it is refused; the default adds 5 s of margin.
*/}}
{{- define "chatserver.terminationGracePeriodSeconds" -}}
{{- $preStop := int .Values.shutdown.preStopSleepSeconds }}
{{- $drain := int .Values.config.CHAT_DRAIN_SECONDS }}
{{- $needed := add $preStop $drain }}
{{- $explicit := .Values.shutdown.terminationGracePeriodSeconds }}
{{- if and $explicit (ne (toString $explicit) "") }}
{{- if lt (int $explicit) $needed }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds=%d is less than preStopSleepSeconds (%d) + CHAT_DRAIN_SECONDS (%d): pods would be killed mid-drain" (int $explicit) $preStop $drain) }}
{{- end }}
{{- int $explicit }}
{{- else }}
{{- add $needed 5 }}
{{- end }}
{{- end }}

{{/* Many replicas without Redis would each be an island: refuse it while rendering. */}}
{{- define "chatserver.validate" -}}
{{- if include "chatserver.createSecret" . }}
{{- $values := .Values.secrets.values | default dict }}
{{- if not $values.JWT_SECRET }}
{{- fail "secrets.values.JWT_SECRET is required (the HMAC secret shared with the game backend), or use secrets.existingSecret" }}
{{- end }}
{{- if not $values.MONGODB_URL }}
{{- fail "secrets.values.MONGODB_URL is required: without it every pod keeps its own, non-durable history" }}
{{- end }}
{{- if not $values.REDIS_URL }}
{{- fail "secrets.values.REDIS_URL is required: without it pods do not see each other's messages" }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
