package ox

import (
	"errors"
	"strings"
	"time"
)

// XEP-0082 §3.2 DateTimes for the PEP payloads (pubkey-metadata dates, item
// ids). The content element's <time/> affix is sce's business; sce keeps its
// DateTime codec unexported, so the few lines needed here are repeated.

var errDateTime = errors.New("not an XEP-0082 DateTime")

// dateTimeLayout writes XEP-0082 DateTimes in UTC, with fractional seconds
// only when there are any.
const dateTimeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// parseDateTime parses CCYY-MM-DDThh:mm:ss[.sss]TZD with TZD 'Z' or
// ±hh:mm (XEP-0082 §3.2) and returns it in UTC.
func parseDateTime(s string) (time.Time, error) {
	if len(s) < len("2006-01-02T15:04:05Z") || s[10] != 'T' || strings.ContainsAny(s, "tz ") {
		return time.Time{}, errDateTime
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}, errDateTime
	}
	return t.UTC(), nil
}

// formatDateTime writes t as an XEP-0082 DateTime in UTC.
func formatDateTime(t time.Time) string { return t.UTC().Format(dateTimeLayout) }
