{{/*
Chart name, truncated to 63 characters (DNS label).
*/}}
{{- define "infra-health.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters (DNS label).
*/}}
{{- define "infra-health.fullname" -}}
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

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "infra-health.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "infra-health.selectorLabels" -}}
app.kubernetes.io/name: {{ include "infra-health.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Standard labels on every object.
*/}}
{{- define "infra-health.labels" -}}
helm.sh/chart: {{ include "infra-health.chart" . }}
{{ include "infra-health.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: infra-health
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of a job's CronJob: <fullname>-<job key>, and <fullname>-<job key>-shard-<K>-of-<N> for
shard K of a job with shards: N > 1. Kubernetes allows 52 characters (it appends 11 for each Job
it creates); a longer name is refused rather than truncated, since truncation could give two
jobs (or two shards) the same name. Call with (dict "root" $ "name" $jobKey), plus "shard" (an
entry of infra-health.shards) for a sharded job.
*/}}
{{- define "infra-health.cronJobName" -}}
{{- $name := printf "%s-%s" (include "infra-health.fullname" .root) .name }}
{{- $k := 0 }}
{{- with .shard }}{{ $k = int .k }}{{ end }}
{{- if gt $k 0 }}
{{- $name = printf "%s-shard-%d-of-%d" $name $k (int .shard.n) }}
{{- end }}
{{- if gt (len $name) 52 }}
{{- if gt $k 0 }}
{{- fail (printf "CronJob name %q (shard suffix included) is %d characters, Kubernetes allows 52: use a shorter release name, set fullnameOverride, or shorten the key jobs.%s" $name (len $name) .name) }}
{{- end }}
{{- fail (printf "CronJob name %q is %d characters, Kubernetes allows 52: use a shorter release name, set fullnameOverride, or shorten the key jobs.%s" $name (len $name) .name) }}
{{- end }}
{{- $name }}
{{- end }}

{{/*
The CronJobs of one job, as a JSON list (read it with fromJsonArray): one entry per shard, each
{"k": K, "n": N, "schedule": "..."}. With shards: 1 (the default) a single entry with k 0: the
job renders as one CronJob, named, scheduled and run exactly as without sharding.

With shards: N > 1 (only for a `run` job: the binary's `--shard K/N`), entry K (1..N) gets:
  - jobs.<name>.schedules[K-1] when that list is set (it must have N entries);
  - else the job's schedule with its minute field offset by (K-1) * floor(P/N) minutes, where P
    is the period of the minute field: the step form "every P minutes" (a star, a slash, P < 60)
    becomes `O-59/P` (shard 1 keeps the star form), a single minute M (P = 60) becomes
    (M + O) mod 60 in the same hour. The shards
    thus start spread evenly over the period, each at a minute of its own, and each keeps the
    job's interval. @hourly, @daily, @midnight, @weekly, @monthly, @yearly and @annually are
    read as their five-field form. Any other minute field (a list, a range, `*`), or more shards
    than minutes in the period, fails the render: set jobs.<name>.schedules.
Call with (dict "root" $ "jobKey" $jobKey "job" $job); $job needs args, schedule and, when set,
shards and schedules.
*/}}
{{- define "infra-health.shards" -}}
{{- $key := .jobKey }}
{{- $n := int (.job.shards | default 1) }}
{{- $schedules := .job.schedules | default list }}
{{- $out := list }}
{{- if le $n 1 }}
{{- if $schedules }}
{{- fail (printf "jobs.%s.schedules is for a sharded job (shards > 1), one schedule per shard; with one shard set jobs.%s.schedule" $key $key) }}
{{- end }}
{{- $out = append $out (dict "k" 0 "n" 1 "schedule" .job.schedule) }}
{{- else }}
{{- $command := tpl (toString (first (.job.args | default list))) .root }}
{{- if ne $command "run" }}
{{- fail (printf "jobs.%s.shards is %d, but only a `run` job can be sharded (the binary's `run --shard K/N` splits the GitHub repositories it collects); this job runs %q: set jobs.%s.shards=1" $key $n $command $key) }}
{{- end }}
{{- if $schedules }}
{{- if ne (len $schedules) $n }}
{{- fail (printf "jobs.%s.schedules has %d entries, but jobs.%s.shards is %d: give one cron expression per shard" $key (len $schedules) $key $n) }}
{{- end }}
{{- range $i, $s := $schedules }}
{{- $out = append $out (dict "k" (add1 $i) "n" $n "schedule" $s) }}
{{- end }}
{{- else }}
{{- $given := trim (toString .job.schedule) }}
{{- $macros := dict "@hourly" "0 * * * *" "@daily" "0 0 * * *" "@midnight" "0 0 * * *" "@weekly" "0 0 * * 0" "@monthly" "0 0 1 * *" "@yearly" "0 0 1 1 *" "@annually" "0 0 1 1 *" }}
{{- $fields := regexSplit `\s+` (get $macros $given | default $given) -1 }}
{{- $minute := first $fields }}
{{- $period := 0 }}
{{- $base := -1 }}
{{- if ne (len $fields) 5 }}
{{- else if regexMatch `^\*/[0-9]{1,2}$` $minute }}
{{- $period = atoi (trimPrefix "*/" $minute) }}
{{- else if regexMatch "^[0-9]{1,2}$" $minute }}
{{- $base = atoi $minute }}
{{- if lt $base 60 }}{{ $period = 60 }}{{ end }}
{{- end }}
{{- if or (lt $period 1) (gt $period 60) (and (lt $base 0) (ge $period 60)) }}
{{- fail (printf "jobs.%s.schedule %q cannot be staggered over %d shards: the chart offsets the minute field only when it is */P (every P minutes, P below 60) or a single minute; set jobs.%s.schedules to a list of %d cron expressions, one per shard" $key $given $n $key $n) }}
{{- end }}
{{- $step := div $period $n }}
{{- if lt $step 1 }}
{{- fail (printf "jobs.%s.schedule %q cannot be staggered over %d shards: its minute field repeats every %d minutes, too few for %d shards to start at a minute each; use fewer shards or set jobs.%s.schedules to a list of %d cron expressions, one per shard" $key $given $n $period $n $key $n) }}
{{- end }}
{{- $rest := rest $fields | join " " }}
{{- range $i := until $n }}
{{- $offset := mul $i $step }}
{{- $m := "" }}
{{- if ge $base 0 }}
{{- $m = toString (mod (add $base $offset) 60) }}
{{- else if eq $offset 0 }}
{{- $m = $minute }}
{{- else }}
{{- $m = printf "%d-59/%d" $offset $period }}
{{- end }}
{{- $out = append $out (dict "k" (add1 $i) "n" $n "schedule" (printf "%s %s" $m $rest)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
Service account the pods run as.
*/}}
{{- define "infra-health.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "infra-health.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, else repository:tag.
*/}}
{{- define "infra-health.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Where the config is mounted, and the file the binary reads (INFRA_HEALTH_CONFIG).
*/}}
{{- define "infra-health.configDir" -}}/etc/infra-health{{- end }}
{{- define "infra-health.configPath" -}}/etc/infra-health/infra-health.toml{{- end }}
{{- define "infra-health.configMapName" -}}{{ include "infra-health.fullname" . }}-config{{- end }}

{{/*
The TOML config text: inline `config` wins, else the chart file named by `configFile`.
*/}}
{{- define "infra-health.configContent" -}}
{{- $content := .Values.config | default (.Files.Get .Values.configFile) -}}
{{- if not (trim $content) -}}
{{- fail (printf "the infra-health config is empty: set `config` to the TOML text (or --set-file config=path/to/infra-health.toml), or `configFile` to a file inside the chart (%q was not found or is empty)" .Values.configFile) -}}
{{- end -}}
{{- $content -}}
{{- end }}

{{/*
State URL (INFRA_HEALTH_STATE). Without state.url every pod starts with an empty memory (no
carry-forward: each job sends the other jobs' rows as unknown; COUNT baselines lost), so an empty
state.url is refused unless state.ephemeral=true says it is on purpose; then the pod's /tmp
emptyDir holds the state for one run.
*/}}
{{- define "infra-health.stateUrl" -}}
{{- if .Values.state.url }}
{{- .Values.state.url }}
{{- else if .Values.state.ephemeral }}
{{- "file:///tmp/infra-health-state/" }}
{{- else }}
{{- fail "state.url is required: set state.url=s3://BUCKET/PREFIX/ (the state store every job shares: carry-forward, COUNT baselines, GitHub ETag cache, spool of undelivered metrics). Without it each pod starts with an empty memory and every run sends the other jobs' rows as unknown; set state.ephemeral=true to accept that (for a trial)" }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding DD_API_KEY, DD_APP_KEY and GITHUB_TOKEN: the ExternalSecret's
target when externalSecret.enabled, else secrets.existingSecret (required).
*/}}
{{- define "infra-health.secretName" -}}
{{- if .Values.externalSecret.enabled }}
{{- default (printf "%s-secrets" (include "infra-health.fullname" .)) .Values.externalSecret.target.name }}
{{- else }}
{{- required "secrets.existingSecret is required: name an existing Secret that holds the keys in secrets.keys (dd-api-key, dd-app-key, github-token), or set externalSecret.enabled=true (with externalSecret.secretStoreRef.name) to have External Secrets Operator create it from AWS Secrets Manager" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/*
The secret variables: value key in secrets.keys / externalSecret.remoteRefs -> env var name.
*/}}
{{- define "infra-health.secretEnvNames" -}}
ddApiKey: DD_API_KEY
ddAppKey: DD_APP_KEY
githubToken: GITHUB_TOKEN
{{- end }}

{{/*
Every env var name that carries a secret; extraEnv may not give these an inline value.
*/}}
{{- define "infra-health.forbiddenInlineEnv" -}}
DD_API_KEY DD_API_KEY_FILE DD_APP_KEY DD_APP_KEY_FILE GITHUB_TOKEN GH_TOKEN GITHUB_TOKEN_FILE
{{- end }}

{{/*
Refuse an EnvVar list that sets a secret variable inline. Call with (dict "env" $list "where" "extraEnv").
*/}}
{{- define "infra-health.checkNoInlineSecrets" -}}
{{- $forbidden := splitList " " (include "infra-health.forbiddenInlineEnv" .) }}
{{- range .env }}
{{- if and (has .name $forbidden) (hasKey . "value") }}
{{- fail (printf "%s sets %s with an inline value: secrets must come from a Secret (use valueFrom.secretKeyRef, or secrets.existingSecret / externalSecret)" $.where .name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The container env of one job. Call with (dict "root" $ "job" $resolvedJob "jobName" $key).
The job gets only the secret variables named in its secretKeys; a key listed in
.job.optionalKeys is injected with secretKeyRef.optional=true.
*/}}
{{- define "infra-health.env" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
- name: INFRA_HEALTH_CONFIG
  value: {{ include "infra-health.configPath" $root | quote }}
- name: INFRA_HEALTH_STATE
  value: {{ include "infra-health.stateUrl" $root | quote }}
{{- with $v.state.region }}
- name: AWS_REGION
  value: {{ . | quote }}
{{- end }}
- name: DD_SITE
  value: {{ $v.datadog.site | quote }}
- name: DD_ENV
  value: {{ $v.datadog.env | quote }}
{{- with $v.datadog.url }}
- name: DD_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.github.apiUrl }}
- name: GITHUB_API_URL
  value: {{ . | quote }}
{{- end }}
{{- with $v.github.repository }}
- name: GITHUB_REPOSITORY
  value: {{ . | quote }}
{{- end }}
- name: RUST_LOG
  value: {{ $v.logLevel | quote }}
- name: HOME
  value: /tmp
- name: TMPDIR
  value: /tmp
{{- $secretName := include "infra-health.secretName" $root }}
{{- $names := include "infra-health.secretEnvNames" $root | fromYaml }}
{{- $optionalKeys := .job.optionalKeys | default list }}
{{- range $key := list "ddApiKey" "ddAppKey" "githubToken" }}
{{- $secretKey := index $v.secrets.keys $key }}
{{- if and $secretKey (has $key ($.job.secretKeys | default list)) }}
{{- if $v.secrets.mountAsFiles }}
- name: {{ index $names $key }}_FILE
  value: {{ printf "%s/%s" (trimSuffix "/" $v.secrets.mountPath) $secretKey | quote }}
{{- else }}
- name: {{ index $names $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ $secretKey }}
      optional: {{ or $v.secrets.optional (has $key $optionalKeys) }}
{{- end }}
{{- end }}
{{- end }}
{{- include "infra-health.checkNoInlineSecrets" (dict "env" $v.extraEnv "where" "extraEnv") }}
{{- with $v.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- include "infra-health.checkNoInlineSecrets" (dict "env" .job.env "where" (printf "jobs.%s.env" .jobName)) }}
{{- with .job.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volume mounts of the `helm test` pod: the config, /tmp and (mountAsFiles) the Secret.
*/}}
{{- define "infra-health.testMounts" -}}
- name: config
  mountPath: {{ include "infra-health.configDir" . }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.secrets.mountAsFiles }}
- name: secrets
  mountPath: {{ .Values.secrets.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
The secret keys (names of secrets.keys) some enabled job uses, space-separated: the
ExternalSecret fetches only these, so a key no job needs (the application key while the
dashboard and verify jobs are off) need not exist in AWS Secrets Manager.
*/}}
{{- define "infra-health.usedSecretKeys" -}}
{{- $used := list }}
{{- range $jobKey, $raw := .Values.jobs }}
{{- $enabled := (kindIs "invalid" $raw.enabled) | ternary $.Values.jobDefaults.enabled $raw.enabled }}
{{- if $enabled }}
{{- $keys := (kindIs "invalid" $raw.secretKeys) | ternary $.Values.jobDefaults.secretKeys $raw.secretKeys }}
{{- range $keys }}
{{- $used = append $used . }}
{{- end }}
{{- end }}
{{- end }}
{{- $used | uniq | sortAlpha | join " " }}
{{- end }}
