package analysis

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// maxValueLen bounds a measured value's text in status.
const maxValueLen = 1024

// FormatValue is a measured value as status shows it: numbers in their
// shortest form (0.62), strings as they are, lists and maps as JSON.
func FormatValue(v any) string {
	var s string
	switch x := v.(type) {
	case nil:
		s = "null"
	case float64:
		s = formatFloat(x)
	case float32:
		s = formatFloat(float64(x))
	case int, int32, int64, bool:
		s = fmt.Sprint(x)
	case string:
		s = x
	case []float64:
		parts := make([]any, len(x))
		for i, f := range x {
			parts[i] = jsonFloat(f)
		}
		s = marshal(parts)
	default:
		s = marshal(v)
	}
	if len(s) > maxValueLen {
		s = s[:maxValueLen] + "..."
	}
	return s
}

func formatFloat(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// jsonFloat keeps NaN and infinities printable inside JSON.
func jsonFloat(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return formatFloat(f)
	}
	return f
}

func marshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
