package workloadstatus

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/drover-dev/drover/internal/inplace"
	"github.com/drover-dev/drover/internal/podstate"
)

// Counts are the pod counters every workload's status carries, counted
// the same way for every kind.
type Counts struct {
	// Replicas counts active pods (not terminating, not finished).
	Replicas int32
	// Ready counts active pods with a True Ready condition.
	Ready int32
	// Available counts active pods the workload deems available (ready for
	// minReadySeconds, gate open, no in-place update in flight).
	Available int32
	// Updated, UpdatedReady and UpdatedAvailable count the active pods of
	// the update revision.
	Updated, UpdatedReady, UpdatedAvailable int32
	// InFlight counts active pods with an in-place update in flight.
	InFlight int32
}

// Add counts pod when it is active, and reports whether it was.
func (c *Counts) Add(pod *corev1.Pod, available, updated, inFlight bool) bool {
	if !podstate.IsActive(pod) {
		return false
	}
	c.Replicas++
	// A pod with an in-place update in flight, or its InPlaceUpdateReady
	// gate closed, is leaving the endpoints: the kubelet turns its Ready
	// condition False a moment later. Counting it ready until then would
	// let a Rollout send traffic to a canary about to restart.
	ready := podstate.IsReady(pod) && !inFlight && inplace.GateStatus(pod) != corev1.ConditionFalse
	if ready {
		c.Ready++
	}
	if available {
		c.Available++
	}
	if updated {
		c.Updated++
		if ready {
			c.UpdatedReady++
		}
		if available {
			c.UpdatedAvailable++
		}
	}
	if inFlight {
		c.InFlight++
	}
	return true
}
