package demoapp

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func readyPod(name, ip string, lbls map[string]string, ports ...corev1.ContainerPort) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name), Labels: lbls},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "web:v1", Ports: ports}}},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func TestPodPorts(t *testing.T) {
	p := readyPod("a", "127.1.0.2", nil)
	if got := podPorts(p); !reflect.DeepEqual(got, []int32{DefaultPort}) {
		t.Errorf("no ports: %v", got)
	}
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 9090}, {ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 80, Protocol: corev1.ProtocolTCP}}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "b", Ports: []corev1.ContainerPort{{ContainerPort: 80}}})
	p.Spec.InitContainers = []corev1.Container{
		{Name: "sidecar", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{{ContainerPort: 15000}}},
		{Name: "init", Ports: []corev1.ContainerPort{{ContainerPort: 1234}}},
	}
	if got := podPorts(p); !reflect.DeepEqual(got, []int32{80, 9090, 15000}) {
		t.Errorf("ports %v, want [80 9090 15000]", got)
	}
	want := map[string]struct{}{"127.1.0.2:80": {}, "127.1.0.2:9090": {}, "127.1.0.2:15000": {}}
	if got := podAddresses(p); !reflect.DeepEqual(got, want) {
		t.Errorf("addresses %v", got)
	}
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 53, Protocol: corev1.ProtocolUDP}}
	p.Spec.Containers = p.Spec.Containers[:1]
	p.Spec.InitContainers = nil
	if got := podPorts(p); !reflect.DeepEqual(got, []int32{DefaultPort}) {
		t.Errorf("UDP only: %v, want the default", got)
	}
	for name, mutate := range map[string]func(*corev1.Pod){
		"pending":   func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending },
		"succeeded": func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
		"no IP":     func(p *corev1.Pod) { p.Status.PodIP = "" },
	} {
		q := p.DeepCopy()
		mutate(q)
		if got := podAddresses(q); len(got) != 0 {
			t.Errorf("%s: addresses %v, want none", name, got)
		}
	}
}

func TestTargetPort(t *testing.T) {
	p := readyPod("a", "127.1.0.2", nil, corev1.ContainerPort{Name: "http", ContainerPort: 8080}, corev1.ContainerPort{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP})
	p.Spec.InitContainers = []corev1.Container{{Name: "proxy", RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways), Ports: []corev1.ContainerPort{{Name: "admin", ContainerPort: 15000}}}}
	for _, tc := range []struct {
		name   string
		sp     corev1.ServicePort
		want   int32
		wantOK bool
	}{
		{"number", corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(9000)}, 9000, true},
		{"default is the port", corev1.ServicePort{Port: 80}, 80, true},
		{"named", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("http")}, 8080, true},
		{"named on a sidecar", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("admin")}, 15000, true},
		{"unknown name", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("grpc")}, 0, false},
		{"name of another protocol", corev1.ServicePort{Port: 80, TargetPort: intstr.FromString("dns")}, 0, false},
		{"name and protocol", corev1.ServicePort{Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")}, 53, true},
	} {
		got, ok := targetPort(&tc.sp, p)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: got %d %v, want %d %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestSelectBackends(t *testing.T) {
	http := corev1.ContainerPort{Name: "http", ContainerPort: 8080}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web"},
		Spec: corev1.ServiceSpec{
			ClusterIP: "127.3.0.10",
			Selector:  map[string]string{"app": "web"},
			Ports:     []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	b := readyPod("b", "127.1.0.3", map[string]string{"app": "web", "track": "canary"}, http)
	a := readyPod("a", "127.1.0.2", map[string]string{"app": "web", "track": "stable"}, http)
	other := readyPod("other", "127.1.0.4", map[string]string{"app": "db"}, http)
	otherNS := readyPod("c", "127.1.0.5", map[string]string{"app": "web"}, http)
	otherNS.Namespace = "elsewhere"
	unready := readyPod("d", "127.1.0.6", map[string]string{"app": "web"}, http)
	unready.Status.Conditions[0].Status = corev1.ConditionFalse
	terminating := readyPod("e", "127.1.0.7", map[string]string{"app": "web"}, http)
	terminating.DeletionTimestamp = &metav1.Time{}
	noPort := readyPod("f", "127.1.0.8", map[string]string{"app": "web"})
	notServed := readyPod("g", "127.1.0.9", map[string]string{"app": "web"}, http)
	pods := []*corev1.Pod{b, a, other, otherNS, unready, terminating, noPort, notServed}
	serves := func(p *corev1.Pod, addr string) bool { return p.Name != "g" }

	got := selectBackends(svc, &svc.Spec.Ports[0], pods, serves)
	want := []backend{{"a", "127.1.0.2:8080"}, {"b", "127.1.0.3:8080"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backends %v, want %v", got, want)
	}
	// A promotion switches the selector: the next choice follows it.
	svc.Spec.Selector = map[string]string{"app": "web", "track": "canary"}
	if got := selectBackends(svc, &svc.Spec.Ports[0], pods, serves); !reflect.DeepEqual(got, want[1:]) {
		t.Errorf("after the selector change: %v, want %v", got, want[1:])
	}
	svc.Spec.Selector = nil
	if got := selectBackends(svc, &svc.Spec.Ports[0], pods, serves); len(got) != 0 {
		t.Errorf("without a selector: %v, want none", got)
	}
}

func TestServiceAddresses(t *testing.T) {
	svc := &corev1.Service{Spec: corev1.ServiceSpec{
		Type:      corev1.ServiceTypeClusterIP,
		ClusterIP: "127.3.0.10",
		Selector:  map[string]string{"app": "web"},
		Ports:     []corev1.ServicePort{{Port: 80}, {Port: 53, Protocol: corev1.ProtocolUDP}, {Port: 443, Protocol: corev1.ProtocolTCP}},
	}}
	if got, want := serviceAddresses(svc), map[string]int32{"127.3.0.10:80": 80, "127.3.0.10:443": 443}; !reflect.DeepEqual(got, want) {
		t.Errorf("addresses %v, want %v", got, want)
	}
	for name, mutate := range map[string]func(*corev1.Service){
		"headless":     func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone },
		"no IP yet":    func(s *corev1.Service) { s.Spec.ClusterIP = "" },
		"no selector":  func(s *corev1.Service) { s.Spec.Selector = nil },
		"externalName": func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeExternalName },
	} {
		v := svc.DeepCopy()
		mutate(v)
		if got := serviceAddresses(v); len(got) != 0 {
			t.Errorf("%s: %v, want none", name, got)
		}
	}
}
