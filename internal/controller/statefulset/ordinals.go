package statefulset

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// span is a closed range of reserved ordinals.
type span struct{ from, to int32 }

// reserved is the sorted, merged set of reserved ordinals. Ranges are kept
// as ranges, so "0-999999999" costs nothing.
type reserved []span

// parseReserved reads spec.reserveOrdinals: integers and "a-b" ranges. The
// CRD refuses anything else; an item that slipped through is reported.
func parseReserved(items []intstr.IntOrString) (reserved, error) {
	spans := make([]span, 0, len(items))
	for _, it := range items {
		if it.Type == intstr.Int {
			if it.IntVal < 0 {
				return nil, fmt.Errorf("reserveOrdinals: negative ordinal %d", it.IntVal)
			}
			spans = append(spans, span{it.IntVal, it.IntVal})
			continue
		}
		s := strings.TrimSpace(it.StrVal)
		a, b, isRange := strings.Cut(s, "-")
		from, err := strconv.ParseInt(a, 10, 32)
		if err != nil || from < 0 {
			return nil, fmt.Errorf("reserveOrdinals: %q is not an ordinal or a range \"a-b\"", it.StrVal)
		}
		to := from
		if isRange {
			if to, err = strconv.ParseInt(b, 10, 32); err != nil || to < from {
				return nil, fmt.Errorf("reserveOrdinals: %q is not a range \"a-b\" with a <= b", it.StrVal)
			}
		}
		spans = append(spans, span{int32(from), int32(to)})
	}
	slices.SortFunc(spans, func(x, y span) int { return int(x.from) - int(y.from) })
	var out reserved
	for _, s := range spans {
		if n := len(out); n > 0 && int64(s.from) <= int64(out[n-1].to)+1 {
			out[n-1].to = max(out[n-1].to, s.to)
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// has reports whether ordinal o is reserved.
func (r reserved) has(o int32) bool {
	_, found := slices.BinarySearchFunc(r, o, func(s span, o int32) int {
		switch {
		case s.to < o:
			return -1
		case s.from > o:
			return 1
		}
		return 0
	})
	return found
}

// ordinals returns the set's n ordinals: the first n integers from start
// that are not reserved, ascending. Its index in the list is a pod's
// position, which partition counts.
func (r reserved) ordinals(start, n int32) []int32 {
	out := make([]int32, 0, n)
	o := start
	i := 0
	for int32(len(out)) < n {
		for i < len(r) && r[i].to < o {
			i++
		}
		if i < len(r) && r[i].from <= o {
			o = r[i].to + 1
			continue
		}
		out = append(out, o)
		o++
	}
	return out
}

// podOrdinal parses the ordinal of pod name "<set>-<ordinal>"; ok is false
// for a pod that is not named like the set's pods.
func podOrdinal(set, pod string) (int32, bool) {
	rest, found := strings.CutPrefix(pod, set+"-")
	if !found || rest == "" || (len(rest) > 1 && rest[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(rest, 10, 32)
	if err != nil || n < 0 {
		return 0, false
	}
	return int32(n), true
}

// podName is the name of the pod with ordinal o.
func podName(set string, o int32) string {
	return set + "-" + strconv.FormatInt(int64(o), 10)
}

// claimName is the name of the claim of template vct for pod ordinal o.
func claimName(vct, set string, o int32) string {
	return vct + "-" + podName(set, o)
}
