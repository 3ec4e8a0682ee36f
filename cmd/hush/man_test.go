package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"hush.im/internal/mangen"
)

// The manual page and its source, relative to cmd/hush.
const (
	manRoffPath = "../../docs/hush.1"
	manMDPath   = "../../docs/hush.1.md"
)

// manDoc is one form of the manual page reduced to plain text: its
// sections and the tagged entries (term, body) of each.
type manDoc struct {
	name     string
	text     string              // the whole page, plain
	sections map[string]string   // plain text of each section (by .SH/## title)
	entries  map[string][]string // section title → "term\nbody" of each entry
}

// roffPlain turns the markup that mangen emits back into text.
var roffPlain = strings.NewReplacer(
	`\f(BI`, "", `\fB`, "", `\fI`, "", `\fR`, "", `\fP`, "",
	`\-`, "-", `\e`, `\`, `\&`, "", `\|`, "", `\(em`, "—", `\(en`, "–",
	`\(mi`, "−", `\(sc`, "§", `\(->`, "→", `\(lq`, "“", `\(rq`, "”",
	`\(cq`, "’", `\(dq`, `"`, `\(bu`, "•",
)

// parseRoff reads the page as mangen writes it: .SH sections, .SS
// subsections (which stay in their section) and .TP entries whose term is
// the line after .TP.
func parseRoff(b []byte) *manDoc {
	d := &manDoc{name: "docs/hush.1", sections: map[string]string{}, entries: map[string][]string{}}
	var all strings.Builder
	section := ""
	lines := strings.Split(string(b), "\n")
	entry := -1
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, ".SH "):
			section = strings.Trim(roffPlain.Replace(l[4:]), `"`)
			entry = -1
			continue
		case strings.HasPrefix(l, ".TP"):
			if i+1 < len(lines) {
				i++
				term := roffPlain.Replace(lines[i])
				d.entries[section] = append(d.entries[section], term)
				entry = len(d.entries[section]) - 1
				d.sections[section] += term + "\n"
				all.WriteString(term + "\n")
			}
			continue
		case strings.HasPrefix(l, ".SS "):
			l = strings.Trim(l[4:], `"`)
			entry = -1
		case strings.HasPrefix(l, ".PP"), strings.HasPrefix(l, ".IP"):
			entry = -1
			continue
		case strings.HasPrefix(l, `.\"`), strings.HasPrefix(l, "."):
			continue
		}
		t := roffPlain.Replace(l)
		all.WriteString(t + "\n")
		d.sections[section] += t + "\n"
		if entry >= 0 {
			d.entries[section][entry] += "\n" + t
		}
	}
	d.text = all.String()
	return d
}

var mdEscape = regexp.MustCompile(`\\(.)`)

// mdPlain drops the inline markup of the Markdown source.
func mdPlain(s string) string {
	s = strings.NewReplacer("`", "", "**", "", "*", "").Replace(s)
	// An escaped character was protected from the markup above only in
	// the source; after removing the markup, drop the backslash.
	return mdEscape.ReplaceAllString(s, "$1")
}

// parseMD reads the Markdown source: ## sections and "term" / ": body"
// entries, continued by indented lines.
func parseMD(b []byte) *manDoc {
	d := &manDoc{name: "docs/hush.1.md", sections: map[string]string{}, entries: map[string][]string{}}
	lines := strings.Split(string(b), "\n")
	section := ""
	for i, l := range lines {
		if strings.HasPrefix(l, "## ") {
			section = strings.TrimSpace(l[3:])
			continue
		}
		d.sections[section] += mdPlain(l) + "\n"
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], ": ") {
			body := []string{mdPlain(lines[i+1][2:])}
			for _, c := range lines[i+2:] {
				if !strings.HasPrefix(c, " ") {
					break
				}
				body = append(body, mdPlain(strings.TrimSpace(c)))
			}
			d.entries[section] = append(d.entries[section], mdPlain(l)+"\n"+strings.Join(body, "\n"))
		}
	}
	d.text = mdPlain(string(b))
	return d
}

// loadMan reads both forms of the page.
func loadMan(t *testing.T) (md []byte, docs []*manDoc) {
	t.Helper()
	md, err := os.ReadFile(manMDPath)
	if err != nil {
		t.Fatal(err)
	}
	roff, err := os.ReadFile(manRoffPath)
	if err != nil {
		t.Fatal(err)
	}
	return md, []*manDoc{parseMD(md), parseRoff(roff)}
}

// usageCommands returns every command the usage texts name, as typed
// after "hush" ("send", "ox keys", "omemo init", …), without the bare
// group names omemo and ox.
func usageCommands() []string {
	seen := map[string]bool{}
	top := regexp.MustCompile(`(?m)^    hush ([a-z][a-z-]*(?: [a-z][a-z-]*)*)`)
	for _, m := range top.FindAllStringSubmatch(usage, -1) {
		if m[1] == "omemo" || m[1] == "ox" {
			continue
		}
		seen[m[1]] = true
	}
	sub := regexp.MustCompile(`(?m)^    ([a-z][a-z-]*)`)
	for _, g := range []struct{ prefix, text string }{
		{"account", accountUsage}, {"omemo", omemoUsage}, {"ox", oxUsage},
	} {
		cmds, _, _ := strings.Cut(g.text[strings.Index(g.text, "\nCommands:\n"):], "\nExample:")
		for _, m := range sub.FindAllStringSubmatch(cmds, -1) {
			seen[g.prefix+" "+m[1]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

var longFlag = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)

// usageFlags returns every long flag the usage texts and synopses name.
func usageFlags() []string {
	seen := map[string]bool{}
	for _, s := range []string{usage, accountUsage, omemoUsage, oxUsage, sendSynopsis, chatSynopsis, pingSynopsis, verifySynopsis, doctorSynopsis, demoXMPPSynopsis} {
		for _, m := range longFlag.FindAllStringSubmatch(s, -1) {
			seen[m[1]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

var defaultsFlag = regexp.MustCompile(`(?m)^  (?:-[a-z], )?--([a-z][a-z0-9-]*)`)

// commandFlags runs "hush CMD -h" and returns the flags its flag set
// defines, as PrintDefaults lists them.
func commandFlags(t *testing.T, cmd string) []string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := append(strings.Fields(cmd), "-h")
	if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("hush %s -h: exit %d\n%s", cmd, code, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "Usage: hush "+cmd) {
		t.Fatalf("hush %s -h: no usage line:\n%s", cmd, stderr.String())
	}
	var flags []string
	for _, m := range defaultsFlag.FindAllStringSubmatch(stderr.String(), -1) {
		flags = append(flags, m[1])
	}
	return flags
}

// hasFlag reports whether text names --name (not a longer flag such as
// --name-more).
func hasFlag(text, name string) bool {
	re := regexp.MustCompile(`--` + regexp.QuoteMeta(name) + `([^a-z0-9-]|$)`)
	return re.MatchString(text)
}

// entryCommand returns the command an entry's term documents ("ox keys"
// for "hush ox keys [account flags] [JID]"), or "" if the term is not
// "hush …".
func entryCommand(entry string) string {
	term, _, _ := strings.Cut(entry, "\n")
	words := strings.Fields(term)
	if len(words) < 2 || words[0] != "hush" {
		return ""
	}
	var cmd []string
	for _, w := range words[1:] {
		if !regexp.MustCompile(`^[a-z][a-z-]*$`).MatchString(w) {
			break
		}
		cmd = append(cmd, w)
	}
	return strings.Join(cmd, " ")
}

// manProblems checks one form of the page against the usage texts, the
// flag sets (cmdFlags: command → flags) and the exit codes, and returns
// what is out of step.
func manProblems(d *manDoc, cmds []string, cmdFlags map[string][]string, accountFlagNames, uflags, codes []string) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, d.name+": "+fmt.Sprintf(format, args...))
	}
	for _, s := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES", "SECURITY", "SEE ALSO"} {
		if _, ok := d.sections[s]; !ok && !(s == "NAME" && strings.HasSuffix(d.name, ".md")) {
			bad("no section %s", s)
		}
	}
	entries := map[string]string{}
	for _, e := range d.entries["COMMANDS"] {
		if c := entryCommand(e); c != "" {
			if _, dup := entries[c]; dup {
				bad("command %q documented twice", c)
			}
			entries[c] = e
		}
	}
	for _, c := range cmds {
		e, ok := entries[c]
		if !ok {
			bad("COMMANDS has no entry for hush %s", c)
			continue
		}
		if first := strings.Fields(c)[0]; !regexp.MustCompile(`\b` + first + `\b`).MatchString(d.sections["SYNOPSIS"]) {
			bad("SYNOPSIS does not name %s", first)
		}
		viaAccount := strings.Contains(e, "account flags")
		for _, f := range cmdFlags[c] {
			if viaAccount && slices.Contains(accountFlagNames, f) {
				continue
			}
			if !hasFlag(e, f) {
				bad("the entry of hush %s does not name --%s", c, f)
			}
		}
	}
	for c := range entries {
		if !slices.Contains(cmds, c) {
			bad("COMMANDS documents hush %s, which the usage texts do not name", c)
		}
	}
	for _, f := range accountFlagNames {
		found := false
		entry := regexp.MustCompile(`^(?:-[a-z], )?--` + regexp.QuoteMeta(f) + `[ \n]`)
		for _, e := range d.entries["COMMANDS"] {
			found = found || entry.MatchString(e)
		}
		if !found {
			bad("the account flags have no entry for --%s", f)
		}
	}
	for _, f := range uflags {
		if !hasFlag(d.text, f) {
			bad("--%s (in the usage text) is not named", f)
		}
	}
	var listed []string
	for _, e := range d.entries["EXIT STATUS"] {
		term, _, _ := strings.Cut(e, "\n")
		listed = append(listed, strings.TrimSpace(term))
	}
	sort.Strings(listed)
	if !slices.Equal(listed, codes) {
		bad("EXIT STATUS lists %v, the usage text %v", listed, codes)
	}
	for _, env := range []string{"HUSH_PASSWORD", "XDG_CONFIG_HOME"} {
		if !strings.Contains(d.sections["ENVIRONMENT"], env) {
			bad("ENVIRONMENT does not name %s", env)
		}
	}
	return problems
}

// usageExitCodes returns the exit codes of the usage text, sorted as
// strings.
func usageExitCodes(t *testing.T) []string {
	t.Helper()
	_, section, ok := strings.Cut(usage, "\nExit codes:\n")
	if !ok {
		t.Fatal("usage has no Exit codes section")
	}
	var codes []string
	for _, m := range regexp.MustCompile(`(?m)^    ([0-9]+) `).FindAllStringSubmatch(section, -1) {
		codes = append(codes, m[1])
	}
	sort.Strings(codes)
	return codes
}

// manInputs gathers what the page must match.
func manInputs(t *testing.T) (cmds []string, cmdFlags map[string][]string, accountFlagNames, uflags, codes []string) {
	t.Helper()
	cmds = usageCommands()
	for _, want := range []string{"send", "listen", "ox keys", "demo xmpp", "account show", "omemo inspect", "ox signcrypt", "help"} {
		if !slices.Contains(cmds, want) {
			t.Fatalf("usageCommands() = %v, missing %q", cmds, want)
		}
	}
	cmdFlags = map[string][]string{}
	for _, c := range cmds {
		if c != "help" {
			cmdFlags[c] = commandFlags(t, c)
		}
	}
	accountFlagNames = cmdFlags["account show"]
	if len(accountFlagNames) != 6 {
		t.Fatalf("account flags = %v, want 6", accountFlagNames)
	}
	uflags = usageFlags()
	for _, fl := range cmdFlags {
		for _, f := range fl {
			if !slices.Contains(uflags, f) {
				uflags = append(uflags, f)
			}
		}
	}
	sort.Strings(uflags)
	codes = usageExitCodes(t)
	if !slices.Equal(codes, []string{"0", "1", "130", "2", "3", "4"}) {
		t.Fatalf("usage exit codes = %v", codes)
	}
	return
}

func TestManInStep(t *testing.T) {
	_, docs := loadMan(t)
	cmds, cmdFlags, accountFlagNames, uflags, codes := manInputs(t)
	for _, d := range docs {
		for _, p := range manProblems(d, cmds, cmdFlags, accountFlagNames, uflags, codes) {
			t.Error(p)
		}
	}
}

func TestManGenerated(t *testing.T) {
	md, err := os.ReadFile(manMDPath)
	if err != nil {
		t.Fatal(err)
	}
	want, err := mangen.Convert(md)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(manRoffPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s is not the conversion of %s; run go generate ./cmd/hush", manRoffPath, manMDPath)
	}
}

// TestManCheckerFails makes sure the checks can fail: each edit of the
// source must be reported.
func TestManCheckerFails(t *testing.T) {
	md, _ := loadMan(t)
	cmds, cmdFlags, accountFlagNames, uflags, codes := manInputs(t)
	tests := []struct {
		name, old, new, want string
		all                  bool // replace every occurrence
	}{
		{"flag dropped from its entry", "[`--device-id` *N*] ", "", "the entry of hush omemo init does not name --device-id", false},
		{"flag dropped everywhere", "`--window`", "`--wind`", "--window (in the usage text) is not named", true},
		{"command dropped", "`hush omemo inspect` [`--legacy`] < *ENCRYPTED*", "`hush omemo look`", "no entry for hush omemo inspect", false},
		{"exit code dropped", "`130`\n: `demo xmpp`: interrupted (Prosody stopped, its files removed).\n", "", "EXIT STATUS lists", false},
		{"account flag dropped", "`--ca` *FILE*\n: Trust", "*CA*\n: Trust", "no entry for --ca", false},
		{"section dropped", "## FILES", "## FILE", "no section FILES", false},
		{"environment dropped", "`HUSH_PASSWORD`\n:", "`PASSWORD`\n:", "ENVIRONMENT does not name HUSH_PASSWORD", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !bytes.Contains(md, []byte(tt.old)) {
				t.Fatalf("source has no %q", tt.old)
			}
			n := 1
			if tt.all {
				n = -1
			}
			edited := bytes.Replace(md, []byte(tt.old), []byte(tt.new), n)
			roff, err := mangen.Convert(edited)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []*manDoc{parseMD(edited), parseRoff(roff)} {
				problems := manProblems(d, cmds, cmdFlags, accountFlagNames, uflags, codes)
				if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.want) }) {
					t.Errorf("%s: problems %q, want one containing %q", d.name, problems, tt.want)
				}
			}
		})
	}
}

// TestShortNamesDocumented: every short flag name a command defines is in
// the usage text and on the man page, beside its long name.
func TestShortNamesDocumented(t *testing.T) {
	md, err := os.ReadFile("../../docs/hush.1.md")
	if err != nil {
		t.Fatal(err)
	}
	pair := regexp.MustCompile(`(?m)^  -([a-z]), --([a-z][a-z0-9-]*)`)
	found := 0
	for _, cmd := range []string{"send", "listen", "devices", "account show"} {
		var stderr bytes.Buffer
		run(append(strings.Fields(cmd), "-h"), strings.NewReader(""), io.Discard, &stderr)
		for _, m := range pair.FindAllStringSubmatch(stderr.String(), -1) {
			found++
			short, long := m[1], m[2]
			if !strings.Contains(usage, "-"+short+", --"+long) && !strings.Contains(usage, "-"+short+"|--"+long) {
				t.Errorf("hush %s: the usage text does not name -%s beside --%s", cmd, short, long)
			}
			if !strings.Contains(string(md), "`-"+short+"`") {
				t.Errorf("hush %s: docs/hush.1.md does not name -%s (--%s)", cmd, short, long)
			}
		}
	}
	if found == 0 {
		t.Fatal("no short flag names found")
	}
}
