package sce

import "time"

// dateTimeLayout formats XEP-0082 §3.2 DateTimes in UTC with as many
// fractional digits as needed (none for whole seconds).
const dateTimeLayout = "2006-01-02T15:04:05.999999999Z07:00"

// ParseDateTime parses an XEP-0082 §3.2 DateTime,
// CCYY-MM-DDThh:mm:ss[.sss]TZD, with a mandatory TZD of Z or ±hh:mm, and
// returns it in UTC. Fractions beyond nanoseconds are ignored (XEP-0082 §3.2:
// fractions MAY be ignored). The result must lie in years 1–9999 and must
// not be the zero time, which marks an absent <time/> affix. Any other input
// is ErrDateTime.
//
// It reads the <time/> affix and XEP-0203 delay stamps, and serves other
// packages for XEP-0082 dates in their own elements (XEP-0373 pubkey-metadata).
func ParseDateTime(s string) (time.Time, error) {
	if len(s) < 20 {
		return time.Time{}, ErrDateTime
	}
	num := func(i, j int) int {
		n := 0
		for _, c := range []byte(s[i:j]) {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	year, month, day := num(0, 4), num(5, 7), num(8, 10)
	hour, minute, sec := num(11, 13), num(14, 16), num(17, 19)
	if s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
		year < 0 || month < 1 || month > 12 || day < 1 || hour < 0 || hour > 23 ||
		minute < 0 || minute > 59 || sec < 0 || sec > 59 {
		return time.Time{}, ErrDateTime
	}
	if day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, ErrDateTime
	}
	i, nsec := 19, 0
	if s[i] == '.' {
		i++
		digits := 0
		for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			if digits < 9 {
				nsec = nsec*10 + int(s[i]-'0')
				digits++
			}
		}
		if digits == 0 {
			return time.Time{}, ErrDateTime
		}
		for ; digits < 9; digits++ {
			nsec *= 10
		}
	}
	if i >= len(s) {
		return time.Time{}, ErrDateTime
	}
	offset := 0
	switch s[i] {
	case 'Z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return time.Time{}, ErrDateTime
		}
		oh, om := num(i+1, i+3), num(i+4, i+6)
		if oh < 0 || oh > 23 || om < 0 || om > 59 {
			return time.Time{}, ErrDateTime
		}
		offset = oh*3600 + om*60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return time.Time{}, ErrDateTime
	}
	if i != len(s) {
		return time.Time{}, ErrDateTime
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC).
		Add(-time.Duration(offset) * time.Second)
	if !validStampTime(t) {
		return time.Time{}, ErrDateTime
	}
	return t, nil
}

// validStampTime reports whether t can be written as a DateTime that
// ParseDateTime reads back.
func validStampTime(t time.Time) bool {
	t = t.UTC()
	return !t.IsZero() && t.Year() >= 1 && t.Year() <= 9999
}

// FormatDateTime writes t as an XEP-0082 §3.2 DateTime in UTC, with as many
// fractional digits as needed and none for whole seconds, for example
// "2026-11-26T14:26:40.5Z". ParseDateTime reads back every t with a UTC year
// in 1–9999 that is not the zero time.
func FormatDateTime(t time.Time) string {
	return t.UTC().Format(dateTimeLayout)
}
