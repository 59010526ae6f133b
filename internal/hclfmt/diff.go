package hclfmt

import (
	"bytes"
	"fmt"
	"strings"
)

// contextLines is how many unchanged lines a hunk shows around a change, as diff -u.
const contextLines = 3

// Diff is a unified diff from a to b ("" when they are equal), headed with the two names.
// Configuration files are small, so a plain longest-common-subsequence table is enough.
func Diff(nameA, nameB string, a, b []byte) string {
	if bytes.Equal(a, b) {
		return ""
	}
	x, y := splitLines(a), splitLines(b)
	ops := editScript(x, y)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", nameA, nameB)
	// Hunks: each change with contextLines around it; changes whose contexts touch share one.
	var changes []int
	for i, op := range ops {
		if op.kind != ' ' {
			changes = append(changes, i)
		}
	}
	for k := 0; k < len(changes); {
		from := max(changes[k]-contextLines, 0)
		last := changes[k]
		for k++; k < len(changes) && changes[k]-last <= 2*contextLines; k++ {
			last = changes[k]
		}
		writeHunk(&out, ops[from:min(last+1+contextLines, len(ops))])
	}
	return out.String()
}

type edit struct {
	kind         byte // ' ', '-', '+'
	line         string
	aLine, bLine int // 1-based line numbers before the edit in a and b
}

func writeHunk(out *strings.Builder, ops []edit) {
	var na, nb int
	for _, op := range ops {
		if op.kind != '+' {
			na++
		}
		if op.kind != '-' {
			nb++
		}
	}
	aStart, bStart := ops[0].aLine, ops[0].bLine
	if na == 0 {
		aStart--
	}
	if nb == 0 {
		bStart--
	}
	fmt.Fprintf(out, "@@ -%d,%d +%d,%d @@\n", aStart, na, bStart, nb)
	for _, op := range ops {
		out.WriteByte(op.kind)
		out.WriteString(op.line)
		out.WriteByte('\n')
	}
}

func splitLines(b []byte) []string {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// editScript turns a into b with the fewest deletions and insertions.
func editScript(a, b []string) []edit {
	n, m := len(a), len(b)
	// lcs[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []edit
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, edit{' ', a[i], i + 1, j + 1})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			// Deletions before insertions, as diff -u prints them.
			ops = append(ops, edit{'-', a[i], i + 1, j + 1})
			i++
		default:
			ops = append(ops, edit{'+', b[j], i + 1, j + 1})
			j++
		}
	}
	return ops
}
