package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NotificationType is the receiver a notification is formatted for.
// +kubebuilder:validation:Enum=slack;teams;webhook
type NotificationType string

const (
	// NotificationSlack posts to a Slack incoming webhook: a text and an
	// attachment coloured by outcome, with the rollout, revision, step and
	// phase as fields.
	NotificationSlack NotificationType = "slack"
	// NotificationTeams posts an Adaptive Card to a Microsoft Teams
	// webhook (a Teams workflow "when a webhook request is received").
	NotificationTeams NotificationType = "teams"
	// NotificationWebhook posts Drover's own JSON (see docs/rollout.md,
	// "Notifications").
	NotificationWebhook NotificationType = "webhook"
)

// NotificationTrigger is a moment of a release a notification is sent for.
// +kubebuilder:validation:Enum=StepCompleted;Paused;Promoted;Aborted;AnalysisFailed;AnalysisInconclusive
type NotificationTrigger string

const (
	// TriggerStepCompleted: a canary step completed.
	TriggerStepCompleted NotificationTrigger = "StepCompleted"
	// TriggerPaused: the release paused (a pause step, a user, an
	// inconclusive analysis).
	TriggerPaused NotificationTrigger = "Paused"
	// TriggerPromoted: the new revision became stable.
	TriggerPromoted NotificationTrigger = "Promoted"
	// TriggerAborted: the release was aborted (by a user, an analysis, a
	// webhook, the progress deadline).
	TriggerAborted NotificationTrigger = "Aborted"
	// TriggerAnalysisFailed: an analysis ended Failed or Error.
	TriggerAnalysisFailed NotificationTrigger = "AnalysisFailed"
	// TriggerAnalysisInconclusive: an analysis ended Inconclusive.
	TriggerAnalysisInconclusive NotificationTrigger = "AnalysisInconclusive"
)

// NotificationTriggers returns all the triggers, in the order of a release.
func NotificationTriggers() []NotificationTrigger {
	return []NotificationTrigger{
		TriggerStepCompleted, TriggerPaused, TriggerPromoted, TriggerAborted,
		TriggerAnalysisFailed, TriggerAnalysisInconclusive,
	}
}

// RolloutNotification sends a message to a chat or an HTTP endpoint when
// the release reaches one of its triggers. Messages are sent after the
// Rollout's status recorded the moment, in the background, in order, with
// up to three attempts; a message that cannot be delivered is reported by
// a Warning event NotificationFailed and never holds the release.
// +kubebuilder:validation:XValidation:rule="has(self.url) != has(self.urlFrom)",message="set exactly one of url or urlFrom"
// +kubebuilder:validation:XValidation:rule="!has(self.channel) || self.type == 'slack'",message="channel is only for type slack"
type RolloutNotification struct {
	// name identifies the receiver (in events and logs).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// type of the receiver: slack, teams or webhook.
	// +required
	Type NotificationType `json:"type"`

	// url the message is POSTed to. Slack and Teams webhook URLs carry
	// their token: prefer urlFrom.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('http://') || self.startsWith('https://')",message="url must start with http:// or https://"
	URL string `json:"url,omitempty"`

	// urlFrom reads the URL from a key of a Secret in the Rollout's
	// namespace (read when a message is sent; never written to status,
	// events or logs). One Secret can serve every Rollout of a namespace.
	// +optional
	URLFrom *SecretValue `json:"urlFrom,omitempty"`

	// on lists the triggers sent to this receiver. Empty: all of them.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=6
	On []NotificationTrigger `json:"on,omitempty"`

	// channel overrides the Slack webhook's default channel (type slack).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	Channel string `json:"channel,omitempty"`

	// headers sent with the request; a value from a Secret (in the
	// Rollout's namespace) is never written to status, events or logs.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Headers []HTTPHeader `json:"headers,omitempty"`

	// timeout of one attempt. Defaults to 10s; at most 1m.
	// +optional
	// +kubebuilder:default="10s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('1m')",message="timeout must be more than 0s and at most 1m"
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// metadata is sent as is: in the webhook payload's metadata, and as
	// extra fields of Slack and Teams messages.
	// +optional
	// +kubebuilder:validation:MaxProperties=16
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Sends reports whether the receiver takes messages of the trigger.
func (n *RolloutNotification) Sends(t NotificationTrigger) bool {
	return len(n.On) == 0 || slices.Contains(n.On, t)
}
