package notify

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	rolloutsv1alpha1 "github.com/drover-dev/drover/api/rollouts/v1alpha1"
)

// Body is the JSON a receiver gets for a message.
func Body(r Receiver, m Message) ([]byte, error) {
	switch r.Type {
	case rolloutsv1alpha1.NotificationSlack:
		return json.Marshal(slackBody(r, m))
	case rolloutsv1alpha1.NotificationTeams:
		return json.Marshal(teamsBody(r, m))
	case rolloutsv1alpha1.NotificationWebhook:
		return json.Marshal(webhookBody(r, m))
	}
	return nil, fmt.Errorf("unknown receiver type %q", r.Type)
}

// Title is the message's one-line summary.
func Title(m Message) string {
	who := m.Namespace + "/" + m.Rollout
	switch m.Trigger {
	case rolloutsv1alpha1.TriggerStepCompleted:
		return fmt.Sprintf("%s: step %s completed", who, stepOf(m))
	case rolloutsv1alpha1.TriggerPaused:
		return fmt.Sprintf("%s: release of %s paused", who, m.Revision)
	case rolloutsv1alpha1.TriggerPromoted:
		return fmt.Sprintf("%s: %s promoted", who, m.Revision)
	case rolloutsv1alpha1.TriggerAborted:
		return fmt.Sprintf("%s: release of %s aborted", who, m.Revision)
	case rolloutsv1alpha1.TriggerAnalysisFailed:
		return fmt.Sprintf("%s: analysis of %s failed", who, m.Revision)
	case rolloutsv1alpha1.TriggerAnalysisInconclusive:
		return fmt.Sprintf("%s: analysis of %s inconclusive, waiting for a decision", who, m.Revision)
	}
	return fmt.Sprintf("%s: %s", who, m.Reason)
}

// severity is good, warning or danger: how the message is coloured.
func severity(m Message) string {
	switch m.Trigger {
	case rolloutsv1alpha1.TriggerAborted, rolloutsv1alpha1.TriggerAnalysisFailed:
		return "danger"
	case rolloutsv1alpha1.TriggerPaused, rolloutsv1alpha1.TriggerAnalysisInconclusive:
		return "warning"
	}
	if m.Warning {
		return "warning"
	}
	return "good"
}

// stepOf is "2/4" (1-based) or "-" for a release without steps.
func stepOf(m Message) string {
	if m.Step == nil || m.Steps == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", min(*m.Step+1, m.Steps), m.Steps)
}

type fact struct{ name, value string }

// facts are the message's fields, in a fixed order, then the receiver's
// metadata sorted by key.
func facts(r Receiver, m Message) []fact {
	out := []fact{
		{"Rollout", m.Namespace + "/" + m.Rollout},
		{"Revision", m.Revision},
		{"Stable", m.StableRevision},
		{"Step", stepOf(m)},
	}
	if m.Weight != nil {
		out = append(out, fact{"Weight", strconv.Itoa(int(*m.Weight)) + "%"})
	}
	out = append(out, fact{"Phase", m.Phase})
	for _, k := range slices.Sorted(maps.Keys(r.Metadata)) {
		out = append(out, fact{k, r.Metadata[k]})
	}
	return out
}

type slackMessage struct {
	Channel     string            `json:"channel,omitempty"`
	Username    string            `json:"username"`
	Text        string            `json:"text"`
	Attachments []slackAttachment `json:"attachments"`
}

type slackAttachment struct {
	Fallback string       `json:"fallback"`
	Color    string       `json:"color"`
	Title    string       `json:"title"`
	Text     string       `json:"text"`
	Fields   []slackField `json:"fields"`
	Footer   string       `json:"footer"`
	TS       int64        `json:"ts"`
}

type slackField struct {
	Title string `json:"title"`
	Value string `json:"value"`
	Short bool   `json:"short"`
}

func slackBody(r Receiver, m Message) slackMessage {
	title := Title(m)
	a := slackAttachment{Fallback: title + ": " + m.Text, Color: severity(m), Title: title, Text: m.Text,
		Footer: "Drover · " + string(m.Trigger), TS: m.Time.Unix()}
	for _, f := range facts(r, m) {
		a.Fields = append(a.Fields, slackField{Title: f.name, Value: f.value, Short: true})
	}
	return slackMessage{Channel: r.Channel, Username: "Drover", Text: title, Attachments: []slackAttachment{a}}
}

// Teams: a message with one Adaptive Card, what a Teams workflow's "When
// a Teams webhook request is received" trigger posts to a channel.
type teamsMessage struct {
	Type        string            `json:"type"`
	Summary     string            `json:"summary"`
	Attachments []teamsAttachment `json:"attachments"`
}

type teamsAttachment struct {
	ContentType string    `json:"contentType"`
	Content     teamsCard `json:"content"`
}

type teamsCard struct {
	Schema  string           `json:"$schema"`
	Type    string           `json:"type"`
	Version string           `json:"version"`
	Body    []map[string]any `json:"body"`
}

func teamsBody(r Receiver, m Message) teamsMessage {
	color := map[string]string{"good": "Good", "warning": "Warning", "danger": "Attention"}[severity(m)]
	var fs []map[string]string
	for _, f := range facts(r, m) {
		fs = append(fs, map[string]string{"title": f.name, "value": f.value})
	}
	card := teamsCard{
		Schema: "http://adaptivecards.io/schemas/adaptive-card.json", Type: "AdaptiveCard", Version: "1.4",
		Body: []map[string]any{
			{"type": "TextBlock", "text": Title(m), "weight": "Bolder", "size": "Medium", "color": color, "wrap": true},
			{"type": "TextBlock", "text": m.Text, "wrap": true},
			{"type": "FactSet", "facts": fs},
			{"type": "TextBlock", "text": "Drover · " + string(m.Trigger) + " · " + m.Time.UTC().Format(time.RFC3339),
				"isSubtle": true, "size": "Small", "wrap": true},
		},
	}
	return teamsMessage{Type: "message", Summary: Title(m), Attachments: []teamsAttachment{
		{ContentType: "application/vnd.microsoft.card.adaptive", Content: card}}}
}

// WebhookPayload is what a generic webhook receives.
type WebhookPayload struct {
	// Name and Namespace of the Rollout.
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Trigger of the message.
	Trigger rolloutsv1alpha1.NotificationTrigger `json:"trigger"`
	// Reason and Message of the Rollout's event; Type is Normal or
	// Warning.
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	// Title is the one-line summary the chat receivers show.
	Title string `json:"title"`
	// Phase of the Rollout.
	Phase string `json:"phase"`
	// Revision being released (or the stable one) and the stable one.
	Revision       string `json:"revision"`
	StableRevision string `json:"stableRevision,omitempty"`
	// Step index (0-based) and the number of steps.
	Step  *int32 `json:"step,omitempty"`
	Steps int32  `json:"steps,omitempty"`
	// Weight of the canary, when routed.
	Weight *int32 `json:"weight,omitempty"`
	// Time of the moment (RFC 3339).
	Time time.Time `json:"time"`
	// Metadata of the notification, as given.
	Metadata map[string]string `json:"metadata,omitempty"`
}

func webhookBody(r Receiver, m Message) WebhookPayload {
	kind := "Normal"
	if m.Warning {
		kind = "Warning"
	}
	return WebhookPayload{Name: m.Rollout, Namespace: m.Namespace, Trigger: m.Trigger, Type: kind, Reason: m.Reason,
		Message: m.Text, Title: Title(m), Phase: m.Phase, Revision: m.Revision, StableRevision: m.StableRevision,
		Step: m.Step, Steps: m.Steps, Weight: m.Weight, Time: m.Time.UTC(), Metadata: r.Metadata}
}
