// Package demoapp stands in for the containers and for kube-proxy on a kwok
// cluster, where simulated nodes run no containers.
//
// The kwok harness (internal/kwokcluster) gives pods loopback IPs
// (127.1.N.x) and Services loopback ClusterIPs (127.3.x.x), so one process on
// the test machine can listen on all of them. A Server watches pods and
// Services with client-go informers and:
//
//   - listens on PodIP:port for every TCP container port of every Running pod
//     (8080 for a pod that declares none) and answers each request with the
//     pod's name and version (the tag of its first container's image) as JSON
//     and the headers X-Pod and X-Version. The first container's environment
//     configures failures: ERROR_RATE (0..1) answers that fraction of requests
//     with 500, deterministically (request n fails when floor(n·rate) grows, so
//     exactly 200 of any 1,000 consecutive requests fail at 0.2), and
//     LATENCY_MS delays every answer. The pod is re-read from the informer on
//     every request, so an in-place image change shows at once, without a new
//     listener. The version is that of the running container (the container
//     status' image, as a kubelet reports it after the restart) and falls back
//     to the spec's image before the pod has a status for it;
//   - serves /metrics on each of those listeners in the Prometheus text format,
//     from a registry of the pod's own: http_requests_total{code,method,version}
//     and http_request_duration_seconds{code,method,version}; requests to
//     /metrics are not counted;
//   - listens on ClusterIP:port for every TCP port of every Service that has a
//     ClusterIP and a selector, and reverse-proxies each request, round robin,
//     to a Ready, Running, not terminating pod of the Service's namespace that
//     the Service's selector matches, at the target port (a number, or a
//     container port's name). The API server refuses loopback addresses in
//     EndpointSlices, so the pods are chosen from the informer, per request: a
//     selector change applies to the next request. Unlike kube-proxy, which
//     balances connections, it balances requests. No ready pod gives 503;
//   - optionally serves Prometheus' http_sd_configs at /sd (Options.SDAddr):
//     one target group per Running pod, its listening addresses, labelled with
//     namespace, pod and the pod's labels (names sanitized).
//
// A listener that cannot be bound (the address is still held by a pod that
// is going away) is retried with backoff and whenever another listener closes.
package demoapp
