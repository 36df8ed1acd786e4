package v1alpha1

import (
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Analysis: an AnalysisTemplate (or ClusterAnalysisTemplate) says what to
// measure and how to judge it; a Rollout instantiates it as an AnalysisRun
// with its arguments resolved, and a step, a background analysis or a
// blue-green promotion waits on the run's phase.

// AnalysisPhase is the phase of an AnalysisRun, of one metric, or of one
// measurement.
// +kubebuilder:validation:Enum=Pending;Running;Successful;Failed;Error;Inconclusive
type AnalysisPhase string

const (
	AnalysisPhasePending      AnalysisPhase = "Pending"
	AnalysisPhaseRunning      AnalysisPhase = "Running"
	AnalysisPhaseSuccessful   AnalysisPhase = "Successful"
	AnalysisPhaseFailed       AnalysisPhase = "Failed"
	AnalysisPhaseError        AnalysisPhase = "Error"
	AnalysisPhaseInconclusive AnalysisPhase = "Inconclusive"
)

// Completed reports whether the phase is final.
func (p AnalysisPhase) Completed() bool {
	switch p {
	case AnalysisPhaseSuccessful, AnalysisPhaseFailed, AnalysisPhaseError, AnalysisPhaseInconclusive:
		return true
	}
	return false
}

// AnalysisTemplateSpec is what an AnalysisTemplate, a
// ClusterAnalysisTemplate and an AnalysisRun share.
type AnalysisTemplateSpec struct {
	// args are the template's parameters, referenced in metrics as
	// {{args.NAME}}. An arg without a value must be given by the Rollout.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Args []Argument `json:"args,omitempty"`

	// metrics are measured side by side; the analysis fails when any
	// metric fails.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Metrics []Metric `json:"metrics"`

	// dryRun lists metrics (by name, "*" for all) that are measured and
	// reported but never fail the analysis.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	DryRun []MetricSelector `json:"dryRun,omitempty"`

	// measurementRetention limits how many measurements of a metric the
	// run's status keeps (default 10).
	// +optional
	// +kubebuilder:validation:MaxItems=32
	MeasurementRetention []MeasurementRetention `json:"measurementRetention,omitempty"`
}

// Argument is a named parameter of an analysis.
// +kubebuilder:validation:XValidation:rule="!(has(self.value) && has(self.valueFrom))",message="set at most one of value or valueFrom"
type Argument struct {
	// name of the argument.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_-]*$`
	Name string `json:"name"`
	// value of the argument.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value *string `json:"value,omitempty"`
	// valueFrom reads the value from a Secret or a field of the Rollout.
	// A Secret's value is never written to status, events or logs.
	// +optional
	ValueFrom *ArgumentValueFrom `json:"valueFrom,omitempty"`
}

// ArgumentValueFrom is where an argument's value comes from.
// +kubebuilder:validation:XValidation:rule="(has(self.secretKeyRef) ? 1 : 0) + (has(self.fieldRef) ? 1 : 0) + (has(self.podTemplateHashValue) ? 1 : 0) == 1",message="set exactly one of secretKeyRef, fieldRef or podTemplateHashValue"
type ArgumentValueFrom struct {
	// secretKeyRef is a key of a Secret in the Rollout's namespace.
	// +optional
	SecretKeyRef *corev1.SecretKeySelector `json:"secretKeyRef,omitempty"`
	// fieldRef is a field of the Rollout, such as metadata.name or
	// metadata.labels['team'].
	// +optional
	FieldRef *FieldRef `json:"fieldRef,omitempty"`
	// podTemplateHashValue is the revision of the Rollout's stable or
	// canary ("Latest") pods.
	// +optional
	// +kubebuilder:validation:Enum=Stable;Latest
	PodTemplateHashValue *string `json:"podTemplateHashValue,omitempty"`
}

// FieldRef selects a field of the Rollout.
type FieldRef struct {
	// fieldPath such as metadata.name, metadata.namespace,
	// metadata.labels['KEY'] or metadata.annotations['KEY'].
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=316
	FieldPath string `json:"fieldPath"`
}

// MetricSelector names a metric ("*": every metric).
type MetricSelector struct {
	// metricName is a metric's name or "*".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	MetricName string `json:"metricName"`
}

// MeasurementRetention is how many measurements of a metric to keep.
type MeasurementRetention struct {
	// metricName is a metric's name or "*".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	MetricName string `json:"metricName"`
	// limit is the number of most recent measurements kept.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Limit int32 `json:"limit"`
}

// Metric is one thing measured, and how its measurements are judged.
// +kubebuilder:validation:XValidation:rule="!has(self.thresholdRange) || (!has(self.successCondition) && !has(self.failureCondition))",message="thresholdRange is a shorthand for successCondition and failureCondition: set one or the other"
type Metric struct {
	// name of the metric, unique in the analysis.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`

	// provider takes the measurement.
	// +required
	Provider MetricProvider `json:"provider"`

	// interval between measurements (default: a single measurement).
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`
	// initialDelay before the first measurement.
	// +optional
	InitialDelay *metav1.Duration `json:"initialDelay,omitempty"`
	// count is the number of measurements to take (default 1 without an
	// interval; unlimited with one, until the analysis ends).
	// +optional
	// +kubebuilder:validation:Minimum=1
	Count *int32 `json:"count,omitempty"`

	// successCondition is a CEL expression over `result` (the
	// measurement: a number, a list or a map) that is true when the
	// measurement is good, e.g. `result >= 0.99`.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	SuccessCondition string `json:"successCondition,omitempty"`
	// failureCondition is a CEL expression over `result` that is true when
	// the measurement is bad. A measurement neither successful nor failed
	// is inconclusive.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	FailureCondition string `json:"failureCondition,omitempty"`
	// thresholdRange: the measurement succeeds inside [min, max] and fails
	// outside.
	// +optional
	ThresholdRange *ThresholdRange `json:"thresholdRange,omitempty"`

	// failureLimit is how many failed measurements the metric tolerates
	// (default 0: the first failure fails it).
	// +optional
	// +kubebuilder:validation:Minimum=0
	FailureLimit *int32 `json:"failureLimit,omitempty"`
	// inconclusiveLimit is how many inconclusive measurements it tolerates
	// (default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	InconclusiveLimit *int32 `json:"inconclusiveLimit,omitempty"`
	// consecutiveErrorLimit is how many measurements in a row may fail to
	// be taken (provider unreachable, bad query) before the metric is in
	// Error (default 4). An error never counts as success.
	// +optional
	// +kubebuilder:validation:Minimum=0
	ConsecutiveErrorLimit *int32 `json:"consecutiveErrorLimit,omitempty"`
	// consecutiveSuccessLimit ends the metric as Successful after this
	// many successful measurements in a row.
	// +optional
	// +kubebuilder:validation:Minimum=1
	ConsecutiveSuccessLimit *int32 `json:"consecutiveSuccessLimit,omitempty"`
}

// ThresholdRange bounds a numeric measurement. Bounds are decimal strings.
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="set min, max or both"
type ThresholdRange struct {
	// +optional
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Min *string `json:"min,omitempty"`
	// +optional
	// +kubebuilder:validation:Pattern=`^-?[0-9]+(\.[0-9]+)?$`
	Max *string `json:"max,omitempty"`
}

// MetricProvider takes a measurement: exactly one provider.
// +kubebuilder:validation:XValidation:rule="(has(self.prometheus) ? 1 : 0) + (has(self.web) ? 1 : 0) + (has(self.job) ? 1 : 0) + (has(self.datadog) ? 1 : 0) + (has(self.newRelic) ? 1 : 0) + (has(self.builtin) ? 1 : 0) == 1",message="set exactly one provider: prometheus, web, job, datadog, newRelic or builtin"
type MetricProvider struct {
	// +optional
	Prometheus *PrometheusMetric `json:"prometheus,omitempty"`
	// +optional
	Web *WebMetric `json:"web,omitempty"`
	// +optional
	Job *JobMetric `json:"job,omitempty"`
	// +optional
	Datadog *DatadogMetric `json:"datadog,omitempty"`
	// +optional
	NewRelic *NewRelicMetric `json:"newRelic,omitempty"`
	// +optional
	Builtin *BuiltinMetric `json:"builtin,omitempty"`
}

// PrometheusMetric is an instant PromQL query.
type PrometheusMetric struct {
	// address of the Prometheus server, e.g. http://prometheus:9090.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Address string `json:"address"`
	// query in PromQL, templated: {{args.NAME}}, {{rollout.namespace}},
	// {{rollout.name}}, {{rollout.stableRevision}},
	// {{rollout.canaryRevision}}, {{interval}}.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Query string `json:"query"`
	// timeout of one query (default 10s).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// headers sent with the query.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`
	// authentication for the server.
	// +optional
	Authentication *HTTPAuthentication `json:"authentication,omitempty"`
}

// HTTPHeader is a header sent to a provider; its value may come from a
// Secret.
// +kubebuilder:validation:XValidation:rule="has(self.value) != has(self.valueFrom)",message="set exactly one of value or valueFrom"
type HTTPHeader struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Name string `json:"name"`
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	Value *string `json:"value,omitempty"`
	// +optional
	ValueFrom *SecretValue `json:"valueFrom,omitempty"`
}

// SecretValue is a key of a Secret in the Rollout's namespace.
type SecretValue struct {
	// +required
	SecretKeyRef corev1.SecretKeySelector `json:"secretKeyRef"`
}

// HTTPAuthentication authenticates to a provider: at most one of bearer
// and basic, optionally with TLS settings.
// +kubebuilder:validation:XValidation:rule="!(has(self.bearer) && has(self.basic))",message="set at most one of bearer or basic"
type HTTPAuthentication struct {
	// bearer sends the Secret key's value as a bearer token.
	// +optional
	Bearer *SecretValue `json:"bearer,omitempty"`
	// basic authentication; the Secret holds the keys username and
	// password.
	// +optional
	Basic *BasicAuth `json:"basic,omitempty"`
	// tls settings.
	// +optional
	TLS *TLSConfig `json:"tls,omitempty"`
}

// BasicAuth names a Secret with the keys username and password.
type BasicAuth struct {
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// TLSConfig configures TLS to a provider.
type TLSConfig struct {
	// caSecretName names a Secret whose key ca.crt is the CA bundle;
	// client certificates are its keys tls.crt and tls.key when present.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	CASecretName string `json:"caSecretName,omitempty"`
	// insecureSkipVerify skips certificate verification.
	// +optional
	InsecureSkipVerify bool `json:"insecureSkipVerify,omitempty"`
}

// WebMetric is an HTTP request whose JSON answer is the measurement.
type WebMetric struct {
	// url, templated like a Prometheus query.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	URL string `json:"url"`
	// method (default GET).
	// +optional
	// +kubebuilder:validation:Enum=GET;POST;PUT
	Method string `json:"method,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`
	// body sent with POST and PUT.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	Body string `json:"body,omitempty"`
	// jsonPath selects the measurement in the answer, e.g. {$.data.ok}.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	JSONPath string `json:"jsonPath,omitempty"`
	// timeout of the request (default 10s).
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// +optional
	Authentication *HTTPAuthentication `json:"authentication,omitempty"`
}

// JobMetric runs a Job: the measurement succeeds when the Job succeeds.
type JobMetric struct {
	// metadata of the Job (labels and annotations).
	// +optional
	Metadata JobMetadata `json:"metadata,omitempty"`
	// spec of the Job.
	// +required
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Spec batchv1.JobSpec `json:"spec"`
}

// JobMetadata is the metadata a metric's Job carries.
type JobMetadata struct {
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// DatadogMetric is a Datadog metrics query.
type DatadogMetric struct {
	// query, templated like a Prometheus query.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Query string `json:"query"`
	// apiVersion of the Datadog API: v1 (metrics query) or v2 (scalar
	// query). Default v2.
	// +optional
	// +kubebuilder:validation:Enum=v1;v2
	APIVersion string `json:"apiVersion,omitempty"`
	// secretRef names a Secret with the keys address, api-key and app-key.
	// +required
	SecretRef corev1.LocalObjectReference `json:"secretRef"`
}

// NewRelicMetric is an NRQL query.
type NewRelicMetric struct {
	// query in NRQL, templated like a Prometheus query.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=8192
	Query string `json:"query"`
	// secretRef names a Secret with the keys personal-api-key, account-id
	// and optionally base-url-nerdgraph.
	// +required
	SecretRef corev1.LocalObjectReference `json:"secretRef"`
}

// BuiltinMetric is one of Drover's ready-made metrics.
type BuiltinMetric struct {
	// name: request-success-rate or request-duration-p99.
	// +required
	// +kubebuilder:validation:Enum=request-success-rate;request-duration-p99
	Name string `json:"name"`
	// source of the metric: gatewayapi (the Gateway API implementation's
	// metrics), istio, nginx or http (the http_requests_total /
	// http_request_duration_seconds convention). Default http.
	// +optional
	// +kubebuilder:validation:Enum=gatewayapi;istio;nginx;http
	Source string `json:"source,omitempty"`
	// address of the Prometheus server.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Address string `json:"address"`
}

// AnalysisTemplate is a reusable analysis, instantiated by Rollouts in its
// namespace.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=at,categories=drover
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AnalysisTemplateSpec `json:"spec"`
}

// AnalysisTemplateList is a list of AnalysisTemplates.
//
// +kubebuilder:object:root=true
type AnalysisTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AnalysisTemplate `json:"items"`
}

// ClusterAnalysisTemplate is an analysis every namespace can use.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=cat,categories=drover
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterAnalysisTemplate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AnalysisTemplateSpec `json:"spec"`
}

// ClusterAnalysisTemplateList is a list of ClusterAnalysisTemplates.
//
// +kubebuilder:object:root=true
type ClusterAnalysisTemplateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterAnalysisTemplate `json:"items"`
}

// AnalysisRunSpec is an analysis with its arguments resolved.
type AnalysisRunSpec struct {
	AnalysisTemplateSpec `json:",inline"`
	// terminate ends the run: metrics still running stop, and the run is
	// Successful unless a metric already failed. A Rollout terminates its
	// background analysis at promotion.
	// +optional
	Terminate bool `json:"terminate,omitempty"`
}

// Measurement is one measurement of a metric.
type Measurement struct {
	// +required
	Phase AnalysisPhase `json:"phase"`
	// value measured, as text.
	// +optional
	Value string `json:"value,omitempty"`
	// message explains an error or an inconclusive measurement.
	// +optional
	Message string `json:"message,omitempty"`
	// +required
	StartedAt metav1.Time `json:"startedAt"`
	// +optional
	FinishedAt *metav1.Time `json:"finishedAt,omitempty"`
}

// MetricResult is the state of one metric of a run.
type MetricResult struct {
	// +required
	Name string `json:"name"`
	// +required
	Phase AnalysisPhase `json:"phase"`
	// message explains the phase.
	// +optional
	Message string `json:"message,omitempty"`
	// dryRun: this metric's failures do not fail the run.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
	// measurements, the most recent last, up to measurementRetention.
	// +optional
	Measurements []Measurement `json:"measurements,omitempty"`
	// counts of measurements by outcome.
	// +optional
	Count int32 `json:"count"`
	// +optional
	Successful int32 `json:"successful"`
	// +optional
	Failed int32 `json:"failed"`
	// +optional
	Inconclusive int32 `json:"inconclusive"`
	// +optional
	Error int32 `json:"error"`
	// +optional
	ConsecutiveError int32 `json:"consecutiveError"`
	// +optional
	ConsecutiveSuccess int32 `json:"consecutiveSuccess"`
}

// AnalysisRunStatus is the state of an AnalysisRun.
type AnalysisRunStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// phase of the run: Successful only when every metric is.
	// +optional
	Phase AnalysisPhase `json:"phase,omitempty"`
	// message names the metric (and value) that decided the phase.
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	StartedAt *metav1.Time `json:"startedAt,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=name
	MetricResults []MetricResult `json:"metricResults,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AnalysisRun is one execution of an analysis, usually created by a
// Rollout from templates.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ar,categories=drover
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`
type AnalysisRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec AnalysisRunSpec `json:"spec"`
	// +optional
	Status AnalysisRunStatus `json:"status,omitempty"`
}

// AnalysisRunList is a list of AnalysisRuns.
//
// +kubebuilder:object:root=true
type AnalysisRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AnalysisRun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AnalysisTemplate{}, &AnalysisTemplateList{},
		&ClusterAnalysisTemplate{}, &ClusterAnalysisTemplateList{},
		&AnalysisRun{}, &AnalysisRunList{})
}
