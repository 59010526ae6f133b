package config

import (
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// FormatDiagnostics writes one line per diagnostic, "FILE:LINE:COL: error: MESSAGE" (or
// "warning:"), where MESSAGE is the summary followed by ": " and the detail when the detail adds
// something. URL passwords are masked again here, whatever produced the diagnostic.
func FormatDiagnostics(w io.Writer, diags hcl.Diagnostics) {
	for _, diag := range diags {
		severity := "error"
		if diag.Severity == hcl.DiagWarning {
			severity = "warning"
		}
		message := diag.Summary
		if detail := strings.TrimSpace(diag.Detail); detail != "" && detail != diag.Summary {
			message += ": " + detail
		}
		message = redactURLs(strings.Join(strings.Fields(message), " "))
		switch {
		case diag.Subject == nil:
			fmt.Fprintf(w, "%s: %s\n", severity, message)
		case diag.Subject.Start.Line == 0:
			fmt.Fprintf(w, "%s: %s: %s\n", diag.Subject.Filename, severity, message)
		default:
			fmt.Fprintf(w, "%s:%d:%d: %s: %s\n", diag.Subject.Filename,
				diag.Subject.Start.Line, diag.Subject.Start.Column, severity, message)
		}
	}
}

// invalidURL is what RedactURL returns for input it cannot safely show.
const invalidURL = "<invalid url>"

// RedactURL returns raw with its password replaced by "****", e.g.
// "amqp://user:****@host:5672/vhost". Input that does not parse as a URL with a scheme and an
// authority, or that has an "@" anywhere but in the user info, gives "<invalid url>": such
// input may hold a password in a place the parser did not recognise.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" || !strings.Contains(raw, "://") {
		return invalidURL
	}
	if strings.Contains(u.Path, "@") || strings.Contains(u.RawQuery, "@") || strings.Contains(u.Fragment, "@") {
		return invalidURL
	}
	if _, has := u.User.Password(); !has {
		return u.String()
	}
	// url.URL escapes '*', so a placeholder goes in and the mask replaces it in the text; the
	// user name is escaped, so ":placeholder@" can only be the password's place.
	const placeholder = "REDACTED"
	u.User = url.UserPassword(u.User.Username(), placeholder)
	return strings.Replace(u.String(), ":"+placeholder+"@", ":****@", 1)
}

// userInfoPattern finds "scheme://user:password@" in free text.
var userInfoPattern = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^\s/:@"'` + "`" + `]*:)[^\s@"'` + "`" + `]*@`)

// redactURLs masks the password of every URL in a message.
func redactURLs(message string) string {
	return userInfoPattern.ReplaceAllString(message, "${1}****@")
}

// minSecretLength keeps very short secrets out of scrubbing, where replacing them would mangle
// unrelated words and numbers while protecting nothing.
const minSecretLength = 4

// scrub removes every known secret and URL password from the diagnostics' text, every quoted
// value that came from file() or env() (read): a diagnostic says what was wrong, not what was
// read. Values are quoted with quote (strconv.Quote), so a read value is found in its quoted form.
func scrub(diags hcl.Diagnostics, secrets, read []string) {
	replacements := make([]string, 0, 2*len(secrets)+2*len(read))
	// Quoted read values first: a replacer prefers the earliest, then the first listed, match.
	for _, value := range read {
		replacements = append(replacements, quote(value), readValue, strconv.Quote(value), readValue)
	}
	for _, secret := range secrets {
		if len(secret) >= minSecretLength {
			replacements = append(replacements, secret, "****")
		}
	}
	replacer := strings.NewReplacer(replacements...)
	for _, diag := range diags {
		diag.Summary = redactURLs(replacer.Replace(diag.Summary))
		diag.Detail = redactURLs(replacer.Replace(diag.Detail))
	}
}

// readValue stands for a value from file() or env() in a diagnostic.
const readValue = "(a value read by file() or env(), not shown)"

// maxQuoted is the longest value a diagnostic quotes whole.
const maxQuoted = 80

// quote is a value as a diagnostic shows it: quoted, and cut to its start and its length when
// long (a diagnostic says what was wrong, not what was read).
func quote(value string) string {
	if len(value) <= maxQuoted {
		return strconv.Quote(value)
	}
	cut := maxQuoted / 2
	for cut > 0 && !utf8.RuneStart(value[cut]) {
		cut--
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(value[:cut]), len(value))
}

// sortByPosition orders diagnostics as they appear in the file; those without a position go last.
func sortByPosition(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		case a.Start.Line != b.Start.Line:
			return a.Start.Line < b.Start.Line
		default:
			return a.Start.Column < b.Start.Column
		}
	})
}

// harmlessSummaries are HCL summaries whose details quote only identifiers from the source,
// never values; the details of any other problem in a secret attribute are withheld.
var harmlessSummaries = map[string]bool{
	"Call to unknown function":   true,
	"Unknown variable":           true,
	"Variables not allowed":      true,
	"Function calls not allowed": true,
}

// withholdDetails hides what HCL says about a failed evaluation of a secret attribute: a
// function's error may quote its argument, which may be the secret. Errors of env() and file()
// are ours and quote only names.
func withholdDetails(diags hcl.Diagnostics, attribute string) {
	for _, diag := range diags {
		if harmlessSummaries[diag.Summary] ||
			strings.HasPrefix(diag.Detail, `Call to function "env" failed`) ||
			strings.HasPrefix(diag.Detail, `Call to function "file" failed`) {
			continue
		}
		diag.Detail = fmt.Sprintf("The details are withheld because %s may hold a credential.", attribute)
	}
}
