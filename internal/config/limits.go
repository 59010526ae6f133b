package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Limits on the source that keep HCL's recursive parser and its big-number arithmetic within
// bounds: a deep enough nesting overflows the goroutine stack, which no recover() catches, and a
// number such as 1e9999999 takes minutes to convert. Real configurations are far below them.
const (
	maxSourceSize   = 4 << 20
	maxNesting      = 256
	maxExponentSize = 4 // digits: |exponent| < 10000
)

// numberWithHugeExponent matches a string that is only a number whose exponent is too long, as
// in prefetch = "1e9999999": such a string is refused where a number is expected.
var numberWithHugeExponent = regexp.MustCompile(fmt.Sprintf(`^\s*[-+]?[0-9.]+[eE][-+]?[0-9]{%d,}\s*$`, maxExponentSize+1))

// checkLimits reports, before parsing, the first construct that exceeds a limit.
func checkLimits(src []byte, filename string) hcl.Diagnostics {
	if len(src) > maxSourceSize {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Configuration too large",
			Detail:   fmt.Sprintf("The file has %d bytes; at most %d are accepted.", len(src), maxSourceSize),
			Subject:  &hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos},
		}}
	}
	tokens, _ := hclsyntax.LexConfig(src, filename, hcl.InitialPos) // the parser reports lexical errors
	depth, prefixes, conditionals := 0, 0, 0
	for _, tok := range tokens {
		problem := ""
		switch tok.Type {
		case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenOQuote,
			hclsyntax.TokenOHeredoc, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			depth++
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCQuote,
			hclsyntax.TokenCHeredoc, hclsyntax.TokenTemplateSeqEnd:
			depth = max(depth-1, 0)
		case hclsyntax.TokenBang, hclsyntax.TokenMinus:
			prefixes++
		case hclsyntax.TokenQuestion:
			conditionals++
		case hclsyntax.TokenComma, hclsyntax.TokenEqual:
			conditionals = 0
		case hclsyntax.TokenNewline:
			if depth == 0 {
				conditionals = 0
			}
		case hclsyntax.TokenNumberLit:
			if _, exponent, found := strings.Cut(strings.ToLower(string(tok.Bytes)), "e"); found &&
				len(strings.TrimLeft(exponent, "+-")) > maxExponentSize {
				problem = "a number's exponent has more than 4 digits"
			}
		}
		if tok.Type != hclsyntax.TokenBang && tok.Type != hclsyntax.TokenMinus {
			prefixes = 0
		}
		switch {
		case depth > maxNesting:
			problem = fmt.Sprintf("brackets, braces and strings nest more than %d deep", maxNesting)
		case prefixes > maxNesting:
			problem = fmt.Sprintf("more than %d prefix operators in a row", maxNesting)
		case conditionals > maxNesting:
			problem = fmt.Sprintf("more than %d chained conditionals", maxNesting)
		}
		if problem != "" {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Expression too complex",
				Detail:   "Here " + problem + ".",
				Subject:  tok.Range.Ptr(),
			}}
		}
	}
	return nil
}
