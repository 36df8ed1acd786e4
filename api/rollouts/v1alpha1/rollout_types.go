package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RolloutSpec is the desired state of a Rollout.
// +kubebuilder:validation:XValidation:rule="!has(self.strategy.blueGreen) || self.targetRef.kind in ['CloneSet', 'Deployment']",message="strategy.blueGreen needs a CloneSet or Deployment target: a StatefulSet or DaemonSet cannot run two full sets of pods side by side (use canary)",fieldPath=".strategy.blueGreen"
// +kubebuilder:validation:XValidation:rule="!has(self.trackConfigs) || !self.trackConfigs || self.targetRef.kind in ['CloneSet', 'StatefulSet', 'DaemonSet']",message="spec.trackConfigs needs a CloneSet, StatefulSet or DaemonSet target: a Deployment's canary ReplicaSet could not be handed to the Deployment at promotion with its references renamed to snapshots",fieldPath=".trackConfigs"
type RolloutSpec struct {
	// targetRef names the workload this Rollout releases, in the Rollout's
	// namespace. The workload's template stays the single source of truth:
	// change the workload (by hand, Argo CD or Flux) and the Rollout drives
	// the new revision through the strategy. It cannot change.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="targetRef is immutable: create a new Rollout for another workload"
	TargetRef TargetRef `json:"targetRef"`

	// strategy says how a new revision is released.
	// +required
	Strategy RolloutStrategy `json:"strategy"`

	// paused holds the rollout where it is: no step advances and no pod
	// moves until it is false again.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// progressDeadlineSeconds is how long a step may make no progress (its
	// pods not becoming ready, its traffic weight not verified) before the
	// Progressing condition turns False with reason
	// ProgressDeadlineExceeded. Pauses do not count. Defaults to 600.
	// +optional
	// +kubebuilder:default=600
	// +kubebuilder:validation:Minimum=1
	ProgressDeadlineSeconds *int32 `json:"progressDeadlineSeconds,omitempty"`

	// progressDeadlineAbort aborts the rollout (traffic and pods back to
	// stable) when the progress deadline passes.
	// +optional
	ProgressDeadlineAbort bool `json:"progressDeadlineAbort,omitempty"`

	// webhooks are HTTP endpoints the release calls at its stages: gates
	// that hold it (confirm-*), checks whose failures count toward
	// webhookFailureThreshold (pre-rollout, rollout), a rollback hook that
	// aborts it by answering 2xx, and notifications (post-rollout, event).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Webhooks []RolloutWebhook `json:"webhooks,omitempty"`

	// webhookFailureThreshold is how many failed checks (pre-rollout and
	// rollout webhooks that did not answer 2xx) a release tolerates: one
	// more aborts it. Defaults to 3.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	WebhookFailureThreshold *int32 `json:"webhookFailureThreshold,omitempty"`

	// notifications send a message to Slack, Microsoft Teams or an HTTP
	// endpoint at the moments of a release they subscribe to: step
	// completed, paused, promoted, aborted, analysis failed or
	// inconclusive. They never hold the release.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	Notifications []RolloutNotification `json:"notifications,omitempty"`

	// trackConfigs releases a change to a ConfigMap or Secret the
	// workload's pod template references (volumes, projected volumes, env
	// and envFrom of containers and init containers) through the strategy,
	// like a template change, without anyone editing the workload. The
	// Rollout copies each referenced config into an immutable snapshot
	// (<name>-<hash of its content>, owned by the Rollout) and tells the
	// workload, through its rollout control annotation, to compute its
	// revisions from the template with those references renamed to the
	// snapshots: new content is a new revision, stable pods keep the old
	// snapshot, canary pods get the new one, and an abort brings the old
	// content back. The workload's spec is never written, so a GitOps tool
	// sees no drift. Switching it on or off releases one revision (same
	// content, references renamed): pods are recreated. Needs a CloneSet,
	// StatefulSet or DaemonSet target.
	// +optional
	TrackConfigs bool `json:"trackConfigs,omitempty"`
}

// WebhookType says when a Rollout calls a webhook and what its answer
// means (2xx is success, anything else or no answer is failure):
//
//   - confirm-rollout: before a release moves any pod; the release holds
//     (paused, WebhookGate) until it answers 2xx.
//   - pre-rollout: once per release, when the canary's first pods are
//     ready and before it gets traffic (blue-green: once the preview is
//     ready; no canary pod in the steps: before promotion); a failure
//     counts toward webhookFailureThreshold and is retried.
//   - rollout: before each step completes; a failure counts toward
//     webhookFailureThreshold and holds the step.
//   - confirm-traffic-increase: before a setWeight or setCanaryScale step
//     raises the canary's weight or pods; holds until 2xx.
//   - confirm-promotion: before promotion (after the last step; before a
//     blue-green switch); holds until 2xx.
//   - post-rollout: after the release is promoted or aborted; its answer is
//     only recorded in an event.
//   - rollback: polled while a release is under way; 2xx aborts it.
//   - event: receives every event the Rollout records.
//
// +kubebuilder:validation:Enum=confirm-rollout;pre-rollout;rollout;confirm-traffic-increase;confirm-promotion;post-rollout;rollback;event
type WebhookType string

const (
	WebhookConfirmRollout         WebhookType = "confirm-rollout"
	WebhookPreRollout             WebhookType = "pre-rollout"
	WebhookRollout                WebhookType = "rollout"
	WebhookConfirmTrafficIncrease WebhookType = "confirm-traffic-increase"
	WebhookConfirmPromotion       WebhookType = "confirm-promotion"
	WebhookPostRollout            WebhookType = "post-rollout"
	WebhookRollback               WebhookType = "rollback"
	WebhookEvent                  WebhookType = "event"
)

// RolloutWebhook is an HTTP endpoint the release calls: a POST with a JSON
// body (the Rollout's name, namespace, phase, the revision, the step, the
// webhook's type and metadata, and for an event webhook the event).
type RolloutWebhook struct {
	// name identifies the webhook (in status.gates, events and messages).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// type says when the webhook is called and what its answer means.
	// +required
	Type WebhookType `json:"type"`

	// url the request is POSTed to.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('http://') || self.startsWith('https://')",message="url must start with http:// or https://"
	URL string `json:"url"`

	// timeout of one attempt. Defaults to 10s; at most 1m (the reconcile
	// waits for the answer).
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1m')",message="timeout must be more than 0s and at most 1m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// retries is the number of extra attempts within one check when an
	// attempt fails (no answer or not 2xx). Defaults to 0.
	// +optional
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10
	Retries *int32 `json:"retries,omitempty"`

	// metadata is sent as is in the payload's metadata.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Metadata map[string]string `json:"metadata,omitempty"`

	// headers sent with the request; a value from a Secret (in the
	// Rollout's namespace) is never written to status, events or logs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`
}

// RolloutGateStatus is what a blocking webhook (confirm-*, pre-rollout,
// rollout, rollback) last said in the current release.
type RolloutGateStatus struct {
	// name of the webhook.
	// +required
	Name string `json:"name"`
	// type of the webhook.
	// +required
	Type WebhookType `json:"type"`
	// open: the webhook lets the release go on (a confirm, pre-rollout or
	// rollout webhook answered 2xx; a rollback webhook did not).
	// +optional
	Open bool `json:"open"`
	// lastCheck is when the webhook was last called (unset: not yet).
	// +optional
	LastCheck *metav1.Time `json:"lastCheck,omitempty"`
	// message is the last answer (status code, or the error).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// TargetRef names the workload of a Rollout.
// +kubebuilder:validation:XValidation:rule="(self.apiVersion == 'apps/v1' && self.kind == 'Deployment') || (self.apiVersion == 'apps.drover.dev/v1alpha1' && self.kind in ['CloneSet', 'StatefulSet', 'DaemonSet'])",message="targetRef must be an apps.drover.dev/v1alpha1 CloneSet, StatefulSet or DaemonSet, or an apps/v1 Deployment"
type TargetRef struct {
	// apiVersion of the workload: apps.drover.dev/v1alpha1 or apps/v1.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	APIVersion string `json:"apiVersion"`
	// kind of the workload: CloneSet, StatefulSet, DaemonSet or Deployment.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind"`
	// name of the workload.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// RolloutStrategy says how a new revision is released: exactly one of
// canary and blueGreen.
// +kubebuilder:validation:XValidation:rule="has(self.canary) != has(self.blueGreen)",message="set exactly one of strategy.canary or strategy.blueGreen"
type RolloutStrategy struct {
	// canary releases the new revision step by step: a growing share of
	// pods and traffic, pauses and checks between the steps.
	// +optional
	Canary *CanaryStrategy `json:"canary,omitempty"`

	// blueGreen runs the new revision beside the old one, reachable
	// through the preview Service, then switches the active Service to it
	// at once and removes the old pods after a delay.
	// +optional
	BlueGreen *BlueGreenStrategy `json:"blueGreen,omitempty"`
}

// BlueGreenStrategy releases a new revision beside the old one and
// switches traffic at once.
type BlueGreenStrategy struct {
	// activeService is your Service that production traffic uses; the
	// Rollout adds the workload's revision label to its selector and
	// switches it to the new revision at promotion.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	ActiveService string `json:"activeService"`

	// previewService is your Service that reaches the new revision before
	// promotion (the active revision otherwise).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	PreviewService string `json:"previewService,omitempty"`

	// autoPromotionEnabled promotes as soon as the new revision is ready
	// (after autoPromotionSeconds). false: wait for `drover promote`.
	// Defaults to true.
	// +optional
	AutoPromotionEnabled *bool `json:"autoPromotionEnabled,omitempty"`

	// autoPromotionSeconds is how long the new revision must have been
	// ready before an automatic promotion.
	// +optional
	// +kubebuilder:validation:Minimum=0
	AutoPromotionSeconds *int32 `json:"autoPromotionSeconds,omitempty"`

	// previewReplicaCount is how many pods of the new revision run before
	// promotion; it is scaled to full size before the switch. Defaults to
	// the workload's replicas.
	// +optional
	// +kubebuilder:validation:Minimum=0
	PreviewReplicaCount *int32 `json:"previewReplicaCount,omitempty"`

	// scaleDownDelaySeconds is how long the old revision's pods stay after
	// the switch, so an abort can switch back at once. Defaults to 30.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	ScaleDownDelaySeconds *int32 `json:"scaleDownDelaySeconds,omitempty"`

	// prePromotionAnalysis runs against the preview once it is ready; the
	// switch waits for it to succeed, and its failure aborts the release.
	// +optional
	PrePromotionAnalysis *RolloutAnalysis `json:"prePromotionAnalysis,omitempty"`

	// postPromotionAnalysis runs after the switch while the old pods are
	// still there (scaleDownDelaySeconds is extended until it ends); its
	// failure switches the active Service back to the old revision.
	// +optional
	PostPromotionAnalysis *RolloutAnalysis `json:"postPromotionAnalysis,omitempty"`
}

// RolloutAnalysis instantiates analysis templates as one AnalysisRun.
type RolloutAnalysis struct {
	// templates whose metrics the run measures (merged; metric names must
	// be unique across them).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Templates []AnalysisTemplateRef `json:"templates"`
	// args give the templates' arguments values.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	Args []Argument `json:"args,omitempty"`
}

// AnalysisTemplateRef names an AnalysisTemplate in the Rollout's
// namespace, or a ClusterAnalysisTemplate.
type AnalysisTemplateRef struct {
	// templateName is the template's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	TemplateName string `json:"templateName"`
	// clusterScope: the template is a ClusterAnalysisTemplate.
	// +optional
	ClusterScope bool `json:"clusterScope,omitempty"`
}

// BackgroundAnalysis runs for the whole release from a step on; its
// failure aborts the release whatever step it is at.
type BackgroundAnalysis struct {
	RolloutAnalysis `json:",inline"`
	// startingStep is the step index at which the analysis starts
	// (default 0: with the release).
	// +optional
	// +kubebuilder:validation:Minimum=0
	StartingStep *int32 `json:"startingStep,omitempty"`
}

// CanaryStrategy releases a new revision in steps.
// +kubebuilder:validation:XValidation:rule="has(self.trafficRouting) || !has(self.steps) || self.steps.all(s, !has(s.setCanaryScale) && !has(s.setHeaderRoute) && !has(s.setMirrorRoute))",message="setCanaryScale, setHeaderRoute and setMirrorRoute need trafficRouting: without a router the canary's pods are its traffic (use setWeight)"
type CanaryStrategy struct {
	// stableService is a Service that the Rollout keeps pointed at the
	// stable revision's pods (its selector gets the workload's revision
	// label). Unset: the Rollout creates and owns <rollout>-stable.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	StableService string `json:"stableService,omitempty"`

	// canaryService is a Service that the Rollout keeps pointed at the
	// canary revision's pods (the stable ones when no release is under
	// way). Unset: the Rollout creates and owns <rollout>-canary.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	CanaryService string `json:"canaryService,omitempty"`

	// steps of the release, in order. A release with no steps goes
	// straight to full promotion once the canary pods are ready.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Steps []CanaryStep `json:"steps,omitempty"`

	// trafficRouting shifts traffic with a router. Without it the canary's
	// share of traffic is its share of pods behind the workload's own
	// Services (setWeight sets the number of canary pods).
	// +optional
	TrafficRouting *TrafficRouting `json:"trafficRouting,omitempty"`

	// analysis runs in the background from startingStep until promotion;
	// a failure aborts the release, an inconclusive result pauses it.
	// +optional
	Analysis *BackgroundAnalysis `json:"analysis,omitempty"`

	// maxUnavailable and maxSurge replace the workload's own for the pods
	// a step moves (int or percentage of replicas). Unset: the workload's
	// update strategy decides.
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="maxUnavailable must be a non-negative integer or a percentage from 0% to 100%"
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable,omitempty"`
	// +optional
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:XValidation:rule="type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')",message="maxSurge must be a non-negative integer or a percentage from 0% to 100%"
	MaxSurge *intstr.IntOrString `json:"maxSurge,omitempty"`
}

// CanaryStep is one step of a canary release: exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.setWeight), has(self.pause), has(self.setCanaryScale), has(self.setHeaderRoute), has(self.setMirrorRoute), has(self.analysis)].filter(x, x).size() == 1",message="a step sets exactly one of setWeight, pause, setCanaryScale, setHeaderRoute, setMirrorRoute or analysis"
type CanaryStep struct {
	// setWeight sends this percentage of traffic to the canary. Without a
	// traffic router it sets the canary's share of pods (rounded up).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	SetWeight *int32 `json:"setWeight,omitempty"`

	// pause holds the release: for a duration, or until promoted.
	// +optional
	Pause *PauseStep `json:"pause,omitempty"`

	// setCanaryScale sets the number of canary pods apart from the traffic
	// weight (traffic routing only: without a router pods are traffic).
	// +optional
	SetCanaryScale *SetCanaryScale `json:"setCanaryScale,omitempty"`

	// setHeaderRoute sends every request that matches (headers or a
	// cookie) to the canary, whatever the weight: A/B testing. It stays
	// until the release ends or a later step with the same name and no
	// match removes it. Traffic routing only.
	// +optional
	SetHeaderRoute *SetHeaderRoute `json:"setHeaderRoute,omitempty"`

	// setMirrorRoute copies a percentage of the requests that match to the
	// canary (answers are discarded), while the stable revision keeps
	// answering them. It stays until the release ends or a later step with
	// the same name and no match and no percentage removes it. Traffic
	// routing only.
	// +optional
	SetMirrorRoute *SetMirrorRoute `json:"setMirrorRoute,omitempty"`

	// analysis runs an analysis and holds the step until it ends:
	// Successful goes on, Failed or Error aborts the release, Inconclusive
	// pauses it for a human (promote or abort).
	// +optional
	Analysis *RolloutAnalysis `json:"analysis,omitempty"`
}

// SetHeaderRoute is a managed route that sends matching requests to the
// canary.
type SetHeaderRoute struct {
	// name identifies the managed route among the steps.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// match: a request must match every entry. Empty removes the route.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Match []RouteMatch `json:"match,omitempty"`
}

// SetMirrorRoute is a managed route that mirrors matching requests to the
// canary.
type SetMirrorRoute struct {
	// name identifies the managed route among the steps.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// percentage of matching requests mirrored. Unset with no match
	// removes the route; unset with a match mirrors all of them.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Percentage *int32 `json:"percentage,omitempty"`
	// match: a request must match every entry to be mirrored. Empty:
	// every request.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	Match []RouteMatch `json:"match,omitempty"`
}

// RouteMatch matches a request header or a cookie: exactly one of
// headerName and cookieName is set.
// +kubebuilder:validation:XValidation:rule="[has(self.headerName), has(self.cookieName)].filter(x, x).size() == 1",message="a match names exactly one of headerName or cookieName"
type RouteMatch struct {
	// headerName is the request header to match.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	HeaderName string `json:"headerName,omitempty"`
	// cookieName is the cookie to match (in the Cookie header).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$`
	CookieName string `json:"cookieName,omitempty"`
	// value the header or cookie must have.
	// +required
	Value StringMatch `json:"value"`
}

// StringMatch matches a string: exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.exact), has(self.prefix), has(self.regex)].filter(x, x).size() == 1",message="a value sets exactly one of exact, prefix or regex"
type StringMatch struct {
	// exact value.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Exact string `json:"exact,omitempty"`
	// prefix of the value.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Prefix string `json:"prefix,omitempty"`
	// regex the value must match (RE2 syntax, as the router evaluates it).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Regex string `json:"regex,omitempty"`
}

// PauseStep holds a release.
type PauseStep struct {
	// duration of the pause, such as "30s" or "5m". Unset: until a user
	// promotes the rollout (`drover promote`).
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="duration must not be negative"
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// SetCanaryScale sets the canary's pods apart from its traffic weight:
// exactly one field is set.
// +kubebuilder:validation:XValidation:rule="[has(self.replicas), has(self.weight), has(self.matchTrafficWeight) && self.matchTrafficWeight].filter(x, x).size() == 1",message="setCanaryScale sets exactly one of replicas, weight or matchTrafficWeight: true"
type SetCanaryScale struct {
	// replicas is the number of canary pods.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Replicas *int32 `json:"replicas,omitempty"`
	// weight is the canary's pods as a percentage of the workload's
	// replicas (rounded up).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	Weight *int32 `json:"weight,omitempty"`
	// matchTrafficWeight goes back to sizing the canary by its traffic
	// weight.
	// +optional
	MatchTrafficWeight bool `json:"matchTrafficWeight,omitempty"`
}

// TrafficRouting names the routers that shift traffic between the stable
// and canary Services. Several may be set: each carries the same weight.
// +kubebuilder:validation:XValidation:rule="has(self.gatewayAPI) || has(self.istio) || has(self.nginx) || has(self.smi)",message="trafficRouting needs at least one router: gatewayAPI, istio, nginx or smi"
type TrafficRouting struct {
	// gatewayAPI shifts traffic with Gateway API routes: the Rollout sets
	// the weights of the stable and canary Services among each route's
	// backendRefs; rules that reference neither are left alone.
	// +optional
	GatewayAPI *GatewayAPIRouting `json:"gatewayAPI,omitempty"`

	// istio shifts traffic with an Istio VirtualService: the Rollout sets
	// the weights of the stable and canary destinations of its http
	// routes; other routes are left alone.
	// +optional
	Istio *IstioRouting `json:"istio,omitempty"`

	// nginx shifts traffic with ingress-nginx: the Rollout creates and owns
	// a canary Ingress beside the stable one and sets its canary weight.
	// +optional
	NGINX *NGINXRouting `json:"nginx,omitempty"`

	// smi shifts traffic with an SMI TrafficSplit (split.smi-spec.io/v1alpha3)
	// that the Rollout creates and owns.
	// +optional
	SMI *SMIRouting `json:"smi,omitempty"`
}

// GatewayAPIRouting names the Gateway API routes of a Rollout.
// +kubebuilder:validation:XValidation:rule="(has(self.httpRoutes) ? size(self.httpRoutes) : 0) + (has(self.grpcRoutes) ? size(self.grpcRoutes) : 0) > 0",message="gatewayAPI needs at least one route in httpRoutes or grpcRoutes"
type GatewayAPIRouting struct {
	// httpRoutes are HTTPRoutes (gateway.networking.k8s.io/v1) in the
	// Rollout's namespace.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	HTTPRoutes []RouteRef `json:"httpRoutes,omitempty"`
	// grpcRoutes are GRPCRoutes (gateway.networking.k8s.io/v1) in the
	// Rollout's namespace.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	GRPCRoutes []RouteRef `json:"grpcRoutes,omitempty"`
}

// RouteRef names a route.
type RouteRef struct {
	// name of the route.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// IstioRouting names the Istio objects of a Rollout (networking.istio.io/v1,
// in the Rollout's namespace).
type IstioRouting struct {
	// virtualService whose http routes send traffic to the stable and
	// canary Services.
	// +required
	VirtualService IstioVirtualService `json:"virtualService"`

	// destinationRule: the routes send to one host and the stable and
	// canary subsets of this DestinationRule instead of the two Services;
	// the Rollout keeps each subset's labels equal to its Service's
	// selector (which carries the revision label).
	// +optional
	DestinationRule *IstioDestinationRule `json:"destinationRule,omitempty"`
}

// IstioVirtualService names a VirtualService and the http routes the
// Rollout manages in it.
type IstioVirtualService struct {
	// name of the VirtualService.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// routes are the names of the http routes whose weights the Rollout
	// sets. Empty: every http route with a destination on the stable or
	// canary Service (subset, with a destinationRule).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Routes []string `json:"routes,omitempty"`
}

// IstioDestinationRule names a DestinationRule and its stable and canary
// subsets.
// +kubebuilder:validation:XValidation:rule="self.stableSubsetName != self.canarySubsetName",message="stableSubsetName and canarySubsetName must differ"
type IstioDestinationRule struct {
	// name of the DestinationRule.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// stableSubsetName is the subset that selects the stable revision.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	StableSubsetName string `json:"stableSubsetName"`
	// canarySubsetName is the subset that selects the canary revision.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	CanarySubsetName string `json:"canarySubsetName"`
}

// NGINXRouting names the Ingress that ingress-nginx serves the stable
// Service with.
type NGINXRouting struct {
	// stableIngress is the Ingress (networking.k8s.io/v1, in the Rollout's
	// namespace) whose paths send to the stable Service. It is left as you
	// wrote it; the Rollout creates and owns the canary Ingress
	// <stableIngress>-<rollout>-canary beside it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	StableIngress string `json:"stableIngress"`

	// additionalIngressAnnotations are added to the canary Ingress. A key
	// without a "/" is an ingress-nginx annotation
	// (nginx.ingress.kubernetes.io/<key>). The annotations the Rollout
	// manages win: canary, canary-weight and canary-weight-total always,
	// canary-by-header, -value and -pattern while a header route is set.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	AdditionalIngressAnnotations map[string]string `json:"additionalIngressAnnotations,omitempty"`
}

// SMIRouting names the SMI TrafficSplit of a Rollout.
type SMIRouting struct {
	// trafficSplitName is the TrafficSplit the Rollout creates and owns.
	// Unset: the Rollout's name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TrafficSplitName string `json:"trafficSplitName,omitempty"`

	// rootService is the Service clients address; the mesh splits its
	// traffic between the stable and canary Services.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	RootService string `json:"rootService"`
}

// RolloutPhase summarises a Rollout for people; conditions are the
// machine-readable state.
// +kubebuilder:validation:Enum=Healthy;Progressing;Paused;Degraded
type RolloutPhase string

const (
	// RolloutPhaseHealthy: every pod runs the stable revision and is ready;
	// no release is under way.
	RolloutPhaseHealthy RolloutPhase = "Healthy"
	// RolloutPhaseProgressing: a release is moving through its steps.
	RolloutPhaseProgressing RolloutPhase = "Progressing"
	// RolloutPhasePaused: a release waits at a pause step or for a user.
	RolloutPhasePaused RolloutPhase = "Paused"
	// RolloutPhaseDegraded: the release was aborted (by a user or the
	// progress deadline) and runs the stable revision; retry it or
	// release a new revision.
	RolloutPhaseDegraded RolloutPhase = "Degraded"
)

// PauseReason says why a release is paused.
type PauseReason string

const (
	// PauseReasonCanaryPauseStep: a pause step.
	PauseReasonCanaryPauseStep PauseReason = "CanaryPauseStep"
	// PauseReasonUser: spec.paused.
	PauseReasonUser PauseReason = "User"
	// PauseReasonBlueGreenPause: a blue-green release waits for promotion
	// (autoPromotionEnabled false, or autoPromotionSeconds running).
	PauseReasonBlueGreenPause PauseReason = "BlueGreenPause"
	// PauseReasonInconclusiveAnalysis: an analysis was inconclusive; a
	// human decides (promote goes on, abort rolls back).
	PauseReasonInconclusiveAnalysis PauseReason = "InconclusiveAnalysis"
)

// PauseReasonWebhookGate: a confirm webhook (confirm-rollout,
// confirm-traffic-increase, confirm-promotion) has not answered 2xx.
const PauseReasonWebhookGate PauseReason = "WebhookGate"

// ReasonWaitingForGate is the Reconciling (and Paused) reason while the
// release waits on a webhook: a closed confirm gate, or a pre-rollout or
// rollout check that has not passed yet.
const ReasonWaitingForGate = "WaitingForGate"

// AnalysisKind says what an AnalysisRun of a Rollout is for.
// +kubebuilder:validation:Enum=Step;Background;PrePromotion;PostPromotion
type AnalysisKind string

const (
	AnalysisKindStep          AnalysisKind = "Step"
	AnalysisKindBackground    AnalysisKind = "Background"
	AnalysisKindPrePromotion  AnalysisKind = "PrePromotion"
	AnalysisKindPostPromotion AnalysisKind = "PostPromotion"
)

// RolloutAnalysisRunStatus is an AnalysisRun a Rollout started.
type RolloutAnalysisRunStatus struct {
	// name of the AnalysisRun.
	// +required
	Name string `json:"name"`
	// kind: Step, Background, PrePromotion or PostPromotion.
	// +required
	Kind AnalysisKind `json:"kind"`
	// step is the step index of a Step analysis.
	// +optional
	Step *int32 `json:"step,omitempty"`
	// revision the analysis judges.
	// +required
	Revision string `json:"revision"`
	// phase of the run as last seen.
	// +optional
	Phase AnalysisPhase `json:"phase,omitempty"`
	// message of the run as last seen.
	// +optional
	Message string `json:"message,omitempty"`
	// accepted: the run was Inconclusive and a user promoted past it.
	// +optional
	Accepted bool `json:"accepted,omitempty"`
}

// PauseCondition is one reason a release is paused.
type PauseCondition struct {
	// reason of the pause.
	// +required
	Reason PauseReason `json:"reason"`
	// startTime is when the pause began.
	// +required
	StartTime metav1.Time `json:"startTime"`
	// until is when a timed pause ends (unset: until promoted).
	// +optional
	Until *metav1.Time `json:"until,omitempty"`
}

// RolloutStatus is the observed state of a Rollout.
type RolloutStatus struct {
	// observedGeneration is the generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase: Healthy, Progressing, Paused or Degraded.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// message says what the rollout is doing or waiting for.
	// +optional
	Message string `json:"message,omitempty"`

	// stableRevision is the workload revision that serves production.
	// +optional
	StableRevision string `json:"stableRevision,omitempty"`
	// canaryRevision is the revision being released ("" when none).
	// +optional
	CanaryRevision string `json:"canaryRevision,omitempty"`
	// releaseStartedAt is when the current release (canaryRevision) began.
	// +optional
	ReleaseStartedAt *metav1.Time `json:"releaseStartedAt,omitempty"`
	// currentStepIndex is the step being executed; equal to the number of
	// steps once they are all done.
	// +optional
	CurrentStepIndex *int32 `json:"currentStepIndex,omitempty"`
	// stepStartedAt is when the current step started.
	// +optional
	StepStartedAt *metav1.Time `json:"stepStartedAt,omitempty"`

	// desiredWeight is the traffic percentage the current step sends to the
	// canary; verifiedWeight is the one last confirmed (by the router, or
	// by ready pods without one).
	// +optional
	DesiredWeight int32 `json:"desiredWeight"`
	// +optional
	VerifiedWeight *int32 `json:"verifiedWeight,omitempty"`
	// weightVerifiedAt is when the router first reported verifiedWeight.
	// Pods leave a side whose weight went down only a moment after that
	// (data planes apply an accepted route asynchronously).
	// +optional
	WeightVerifiedAt *metav1.Time `json:"weightVerifiedAt,omitempty"`

	// replicas is the workload's desired replicas; canaryReplicas and
	// stableReplicas the pods the current step runs of each revision, and
	// the *ReadyReplicas those that are ready.
	// +optional
	Replicas int32 `json:"replicas"`
	// +optional
	CanaryReplicas int32 `json:"canaryReplicas"`
	// +optional
	CanaryReadyReplicas int32 `json:"canaryReadyReplicas"`
	// +optional
	StableReplicas int32 `json:"stableReplicas"`
	// +optional
	StableReadyReplicas int32 `json:"stableReadyReplicas"`

	// stableService and canaryService are the Services in use (for
	// blue-green: the active and the preview Service).
	// +optional
	StableService string `json:"stableService,omitempty"`
	// +optional
	CanaryService string `json:"canaryService,omitempty"`

	// pauseConditions are the reasons the release is paused.
	// +optional
	// +listType=map
	// +listMapKey=reason
	PauseConditions []PauseCondition `json:"pauseConditions,omitempty"`

	// abortedRevision is the canary revision a user or the progress
	// deadline aborted: it runs no pods and gets no traffic until a retry
	// or a newer revision.
	// +optional
	AbortedRevision string `json:"abortedRevision,omitempty"`
	// abortMessage says why abortedRevision was aborted: a user, the
	// progress deadline, or the analysis that failed (metric and value).
	// +optional
	AbortMessage string `json:"abortMessage,omitempty"`
	// scaleDownRevision is the old revision a blue-green promotion keeps
	// running until scaleDownAt, so an abort can switch back at once.
	// +optional
	ScaleDownRevision string `json:"scaleDownRevision,omitempty"`
	// +optional
	ScaleDownAt *metav1.Time `json:"scaleDownAt,omitempty"`
	// switchedBackAt is when an abort after a blue-green switch pointed
	// the active Service back at the old revision; the new pods stay a
	// few seconds more, until whatever routes by the Service follows.
	// +optional
	SwitchedBackAt *metav1.Time `json:"switchedBackAt,omitempty"`

	// promoteFull is set by `drover promote --full` (and, for blue-green,
	// by `drover promote`): the remaining steps are skipped.
	// +optional
	PromoteFull bool `json:"promoteFull,omitempty"`

	// webhookFailures counts the failed pre-rollout and rollout webhook
	// checks of the current release; more than
	// spec.webhookFailureThreshold aborts it.
	// +optional
	WebhookFailures int32 `json:"webhookFailures,omitempty"`
	// gates are the blocking webhooks of the current release (step-scoped
	// ones, rollout and confirm-traffic-increase, for the current step)
	// with what they last answered.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Gates []RolloutGateStatus `json:"gates,omitempty"`

	// analysisRuns are the AnalysisRuns of the current release (and of a
	// blue-green post-promotion analysis), with their phase.
	// +optional
	// +listType=map
	// +listMapKey=name
	AnalysisRuns []RolloutAnalysisRunStatus `json:"analysisRuns,omitempty"`

	// trackedConfigs are the ConfigMaps and Secrets the workload's
	// template references, with the snapshot each maps to, while
	// spec.trackConfigs is set.
	// +optional
	// +listType=map
	// +listMapKey=kind
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=1024
	TrackedConfigs []TrackedConfig `json:"trackedConfigs,omitempty"`

	// conditions: Ready, Reconciling and Stalled (kstatus), Progressing,
	// Paused, Aborted, Completed, and ConfigsTracked with
	// spec.trackConfigs.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// TrackedConfig is a ConfigMap or Secret a Rollout tracks
// (spec.trackConfigs).
type TrackedConfig struct {
	// kind is ConfigMap or Secret.
	// +required
	// +kubebuilder:validation:Enum=ConfigMap;Secret
	Kind string `json:"kind"`
	// name is the config's name, as the workload's template references it.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// snapshot is the immutable copy of its current content that the
	// workload's update revision references. Empty when the config does
	// not exist (condition ConfigsTracked says so unless every reference
	// to it is optional); equal to name when the config is referenced as
	// it is: a snapshot itself (the template of an earlier revision, put
	// back by `drover undo`) or a service account token Secret.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Snapshot string `json:"snapshot,omitempty"`
}

// Rollout releases new revisions of a workload progressively: canary
// steps with traffic shifting through a router, pauses and automatic or
// manual promotion and abort.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ro,categories=all;drover
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.targetRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.currentStepIndex`
// +kubebuilder:printcolumn:name="Weight",type=integer,JSONPath=`.status.desiredWeight`
// +kubebuilder:printcolumn:name="Stable",type=string,JSONPath=`.status.stableRevision`
// +kubebuilder:printcolumn:name="Canary",type=string,JSONPath=`.status.canaryRevision`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec RolloutSpec `json:"spec"`
	// +optional
	Status RolloutStatus `json:"status,omitempty"`
}

// RolloutList is a list of Rollouts.
//
// +kubebuilder:object:root=true
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Rollout{}, &RolloutList{})
}
