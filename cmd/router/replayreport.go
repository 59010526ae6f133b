package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/wasmrouter/wasmrouter/router"
)

// replayOutput prints a finished job.
type replayOutput struct {
	stdout, stderr io.Writer
	json           bool
	dryRun         bool
	candidate      string // --with-config as given
}

// result prints the job's outcome and gives the exit status: 1 unless it completed.
func (o replayOutput) result(p router.ReplayProgress) int {
	if o.json {
		enc := json.NewEncoder(o.stdout)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(p)
	} else if o.dryRun {
		if p.DryRun != nil {
			o.printDryRun(p.DryRun)
		}
	} else {
		// The report goes to stderr with the progress: stdout stays the one result line
		// that scripts read (docs/cli.md).
		printJobReport(o.stderr, p)
		fmt.Fprintf(o.stdout, "replayed %d events\n", p.Delivered)
	}
	switch p.State {
	case "done":
		return exitOK
	case "stopped":
		fmt.Fprintf(o.stderr, "router replay: stopped after %d of %d events\n", p.Done, p.Total)
	default:
		fmt.Fprintf(o.stderr, "router replay: the job %s: %s\n", p.State, p.Error)
	}
	if !o.dryRun && p.ID != "" && p.Total > 0 {
		fmt.Fprintf(o.stderr, "router replay: 'router replay --resume %s' continues it where it stopped\n", p.ID)
	}
	return exitFail
}

func (o replayOutput) printDryRun(rep *router.DryRunReport) {
	w := o.stdout
	fmt.Fprintf(w, "would replay %d events\n", rep.WouldReplay)
	fmt.Fprintf(w, "  selected events looked at: %d\n", rep.Events)
	if len(rep.PerTarget) > 0 {
		fmt.Fprintln(w, "  per route -> target:")
		keys := make([]string, 0, len(rep.PerTarget))
		for k := range rep.PerTarget {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		for _, k := range keys {
			fmt.Fprintf(tw, "    %s\t%d\t\n", k, rep.PerTarget[k])
		}
		_ = tw.Flush()
	}
	if rep.Diff != nil {
		printDiff(w, o.candidate, rep.Diff)
	}
}

// printDiff prints how a candidate configuration decides differently.
func printDiff(w io.Writer, candidate string, d *router.DiffReport) {
	fmt.Fprintf(w, "differences with %s ((event, route) decisions):\n", candidate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, row := range []struct {
		label string
		n     uint64
	}{
		{"newly routed", d.NewlyRouted}, {"no longer routed", d.NoLongerRouted},
		{"routed elsewhere", d.RoutedElsewhere}, {"output changed", d.OutputChanged}, {"unchanged", d.Unchanged},
	} {
		fmt.Fprintf(tw, "    %s\t%d\t\n", row.label, row.n)
	}
	_ = tw.Flush()
	if len(d.Examples) == 0 {
		return
	}
	fmt.Fprintln(w, "  examples:")
	for _, ex := range d.Examples {
		fmt.Fprintf(w, "    %s: seq %d, route %s, routing key %q, message id %s: [%s] -> [%s]",
			strings.ReplaceAll(ex.Kind, "_", " "), ex.Seq, ex.Route, ex.RoutingKey, ex.MessageID,
			strings.Join(ex.Before, " "), strings.Join(ex.After, " "))
		if ex.Detail != "" {
			fmt.Fprintf(w, " (%s)", ex.Detail)
		}
		fmt.Fprintln(w)
	}
}

// printJobReport says what a replay or redrive job did with what it selected, and lists the
// events that did not go through with their reasons.
func printJobReport(w io.Writer, p router.ReplayProgress) {
	fmt.Fprintf(w, "  selected %d, delivered %d, dropped by a filter %d, failed %d (dead-lettered %d)\n",
		p.Selected, p.Delivered, p.Dropped, p.Failed, p.DeadLettered)
	for _, f := range p.Failures {
		target := f.Target
		if target == "" {
			target = "(every target)"
		}
		again := "dead-lettered"
		if !f.DeadLettered {
			again = "its dead letter stays pending"
		}
		fmt.Fprintf(w, "  failed: seq %d, route %s, target %s: %s (%s)\n", f.Seq, f.Route, target, f.Reason, again)
	}
	if n := p.Failed - uint64(len(p.Failures)); n > 0 {
		fmt.Fprintf(w, "  ... and %d more failed (router dlq list shows them)\n", n)
	}
}
