{{- /*
Helpers shared by every template of the chart.

The names here are also what the BinderHub values overlay mounts
(`hubext chart binderhub-values --name NAME`): change them only together
with hubext/chart.py.
*/}}

{{- /*
hubext.fullname: name of the ConfigMap and prefix of every other object.
fullnameOverride wins; otherwise the release name, with "-hubext" added
unless the release name already contains "hubext" (a release named
"hubext" gives "hubext"). Cut to 52 characters so that suffixed names stay
within the 63 of a label value.
*/}}
{{- define "hubext.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- /*
hubext.tokensSecret: the Secret holding the repository host tokens, the
admin's own (repoHosts.existingSecret) or the chart's.
*/}}
{{- define "hubext.tokensSecret" -}}
{{- .Values.repoHosts.existingSecret | default (printf "%s-repo-host-tokens" (include "hubext.fullname" .)) -}}
{{- end -}}

{{- /*
hubext.labels: the recommended Kubernetes labels, on every object.
*/}}
{{- define "hubext.labels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- /*
hubext.settings: the values hubext.z2jh reads, as one YAML document. Chart
plumbing (names, RBAC), the tokens and the SMTP password (kept in Secrets)
are left out.
*/}}
{{- define "hubext.settings" -}}
{{- $settings := omit .Values "nameOverride" "fullnameOverride" "rbac" "repoHosts" -}}
{{- $_ := set $settings "repoHosts" (omit .Values.repoHosts "tokens" "existingSecret") -}}
{{- $idle := omit .Values.idle "email" -}}
{{- $_ := set $idle "email" (omit (.Values.idle.email | default dict) "password" "existingSecret") -}}
{{- $_ := set $settings "idle" $idle -}}
{{- toYaml $settings -}}
{{- end -}}
