{{/*
Helpers shared by the templates. The RBAC rules live here (not in rbac.yaml)
because the same namespaced rules go into a ClusterRole (all namespaces) or into
one Role per watched namespace.
*/}}

{{/* Chart name, for the app.kubernetes.io/name label. */}}
{{- define "smi2mesh.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped object name; the release name alone when it already says smi2mesh. */}}
{{- define "smi2mesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels that select the operator pod; must stay stable across upgrades. */}}
{{- define "smi2mesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "smi2mesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object the chart renders. */}}
{{- define "smi2mesh.labels" -}}
{{ include "smi2mesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "smi2mesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "smi2mesh.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference; the tag defaults to the appVersion the chart was released with. */}}
{{- define "smi2mesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The kinds each mesh writes (files/mesh-kinds.yaml), as a dict mesh -> group -> resources. */}}
{{- define "smi2mesh.meshKinds" -}}
{{- .Files.Get "files/mesh-kinds.yaml" }}
{{- end }}

{{/* Comma-separated meshes the operator may write: `mesh` first, then `enabledMeshes`, no duplicates. */}}
{{- define "smi2mesh.enabledMeshes" -}}
{{- $kinds := include "smi2mesh.meshKinds" . | fromYaml }}
{{- $meshes := prepend (.Values.enabledMeshes | default (list)) .Values.mesh | uniq }}
{{- range $meshes }}
{{- if not (hasKey $kinds .) }}
{{- fail (printf "unknown mesh %q: use one of %s" . (keys $kinds | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- join "," $meshes }}
{{- end }}

{{/* Rules for the mesh objects of every enabled mesh, one rule per API group. */}}
{{- define "smi2mesh.meshRules" -}}
{{- $kinds := include "smi2mesh.meshKinds" . | fromYaml }}
{{- $groups := dict }}
{{- $owners := dict }}
{{- range $mesh := include "smi2mesh.enabledMeshes" . | splitList "," }}
{{- range $group, $resources := get $kinds $mesh }}
{{- $_ := set $groups $group (concat (get $groups $group | default (list)) $resources | uniq | sortAlpha) }}
{{- $_ := set $owners $group (append (get $owners $group | default (list)) $mesh) }}
{{- end }}
{{- end }}
{{- range $group := keys $groups | sortAlpha }}
# {{ get $owners $group | join ", " }}: the operator writes these objects by server-side apply
# (create, patch), deletes the ones whose SMI source went away, and watches them to undo drift.
- apiGroups: [{{ $group | quote }}]
  resources: {{ get $groups $group | toJson }}
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
{{- end }}
{{- end }}

{{/* Rules on namespaced objects: in a ClusterRole (all namespaces) or a Role per watched namespace. */}}
{{- define "smi2mesh.namespacedRules" -}}
# SMI objects are the operator's input: it reads and watches them, never writes their spec.
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["access.smi-spec.io"]
  resources: ["traffictargets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["specs.smi-spec.io"]
  resources: ["httproutegroups", "tcproutes", "udproutes"]
  verbs: ["get", "list", "watch"]
# The operator reports translation results and findings in the SMI objects' status
# (a merge patch of the status subresource; it never needs to read it there).
- apiGroups: ["split.smi-spec.io"]
  resources: ["trafficsplits/status"]
  verbs: ["patch"]
- apiGroups: ["access.smi-spec.io"]
  resources: ["traffictargets/status"]
  verbs: ["patch"]
- apiGroups: ["specs.smi-spec.io"]
  resources: ["httproutegroups/status", "tcproutes/status", "udproutes/status"]
  verbs: ["patch"]
# Services give route ports; pods carry the labels of the ServiceAccounts' workloads
# that Istio and Linkerd policies select. ServiceAccount names tell whether a Consul
# CE source name is unique across namespaces (names only; no token is read).
- apiGroups: [""]
  resources: ["services", "pods", "serviceaccounts"]
  verbs: ["get", "list", "watch"]
# Workload pod templates resolve a ServiceAccount to pod labels before pods exist.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "list", "watch"]
# The operator posts core/v1 Events for findings, conflicts and invalid input
# (kopf's own event posting is switched off).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- include "smi2mesh.meshRules" . }}
{{- end }}

{{/* Rules on cluster-scoped objects: always in a ClusterRole. */}}
{{- define "smi2mesh.clusterRules" -}}
{{- if .Values.watchNamespaces }}
# The operator reads the smi2mesh.io/mesh label of the namespaces it watches, and only those.
- apiGroups: [""]
  resources: ["namespaces"]
  resourceNames: {{ .Values.watchNamespaces | toJson }}
  verbs: ["get"]
{{- else }}
# The operator reads every namespace's smi2mesh.io/mesh label and notices label changes.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end }}
# kopf discovers resources through CRDs, so mesh CRDs installed after the operator
# started are picked up without a restart.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/* Rules in the release namespace: the leader-election Lease. */}}
{{- define "smi2mesh.leaseRules" -}}
# Leader election: replicas read the Lease, the first creates it (create cannot be
# limited to a name), the holder renews and releases it, a standby takes it over.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["create"]
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  resourceNames: [{{ include "smi2mesh.fullname" . | quote }}]
  verbs: ["get", "update"]
{{- end }}
