package manager

import (
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/json"

	"github.com/drover-dev/drover/internal/inplace"
)

// benchPod is a CloneSet pod as the API server returns it after kwok ran
// it: what the informer decodes before trimPod.
func benchPod(i int) *corev1.Pod {
	now := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	ctrl := true
	cond := func(t corev1.PodConditionType) corev1.PodCondition {
		return corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now}
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("bench-0-%05d", i), Namespace: "bench-drover", UID: "9d2f1c3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f",
			ResourceVersion: "123456", Generation: 2, CreationTimestamp: now,
			Labels: map[string]string{"app": "bench-0", "apps.drover.dev/workload": "CloneSet",
				"controller-revision-hash": "bench-0-6f55985f8f", "apps.drover.dev/instance-id": "abcde"},
			Annotations: map[string]string{"apps.drover.dev/inplace-update-state": `{"revision":"bench-0-7845c94bf4","phase":"Done","since":"2026-01-02T03:04:05Z"}`},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps.drover.dev/v1alpha1", Kind: "CloneSet", Name: "bench-0",
				UID: "1d2f1c3e-4b5a-4c6d-8e7f-0a1b2c3d4e5f", Controller: &ctrl, BlockOwnerDeletion: &ctrl}},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "drover-manager", Operation: "Update", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:labels":{}}}`)}}},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-000001", RestartPolicy: corev1.RestartPolicyAlways, SchedulerName: "default-scheduler",
			ServiceAccountName: "default", TerminationGracePeriodSeconds: new(int64),
			ReadinessGates: []corev1.PodReadinessGate{{ConditionType: inplace.GateType}},
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:v2", ImagePullPolicy: corev1.PullIfNotPresent,
				TerminationMessagePath: "/dev/termination-log",
				VolumeMounts:           []corev1.VolumeMount{{Name: "kube-api-access-abcde", MountPath: "/var/run/secrets/kubernetes.io/serviceaccount", ReadOnly: true}}}},
			Volumes:     []corev1.Volume{{Name: "kube-api-access-abcde"}},
			Tolerations: []corev1.Toleration{{Key: "node.kubernetes.io/not-ready", Operator: "Exists", Effect: "NoExecute"}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, HostIP: "10.0.0.1", PodIP: "10.0.1.2", StartTime: &now, QOSClass: corev1.PodQOSBestEffort,
			Conditions: []corev1.PodCondition{cond(inplace.GateType), cond(corev1.PodInitialized), cond(corev1.ContainersReady),
				cond(corev1.PodReady), cond(corev1.PodScheduled), cond("PodReadyToStartContainers")},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", Image: "example.com/app:v2", ImageID: "kwok://sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				ContainerID: "kwok://0123456789abcdef0123456789abcdef", Ready: true, Started: new(bool), RestartCount: 1,
				State:                corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed", StartedAt: now, FinishedAt: now}},
				AllocatedResources:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}}},
		},
	}
	return p
}

// BenchmarkCachedPod reports the heap a trimmed pod keeps in the cache
// (bytes/pod): the figure that decides the manager's memory with a large
// fleet. The pod goes through JSON as the informer's does, so its strings
// and maps are separate allocations, as in the cache.
func BenchmarkCachedPod(b *testing.B) {
	raw, err := json.Marshal(benchPod(0))
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	keep := make([]any, n)
	var before, after runtime.MemStats
	for b.Loop() {
		clear(keep)
		trim := newPodTrimmer(newInterner(defaultInternerSize))
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range keep {
			p := &corev1.Pod{}
			if err := json.Unmarshal(raw, p); err != nil {
				b.Fatal(err)
			}
			// Pods differ by name, UID and resourceVersion.
			p.Name, p.UID, p.ResourceVersion = fmt.Sprintf("bench-0-%05d", i), types.UID(fmt.Sprintf("%036d", i)), strconv.Itoa(100000+i)
			keep[i], _ = trim(p)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(trim)
	}
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "bytes/pod")
	runtime.KeepAlive(keep)
}
