// Command router is the wasmrouter appliance: `router run` consumes RabbitMQ sources into an
// event log and delivers to targets through WASM routes; the other commands validate, test,
// inspect and replay. See `router --help`.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	// First among the router's own imports: see the package.
	_ "github.com/wasmrouter/wasmrouter/internal/memprofile"
)

// Exit statuses (docs/cli.md).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run the router until SIGINT/SIGTERM (SIGHUP reloads)", cmdRun},
		{"validate", "check a configuration without touching a broker", cmdValidate},
		{"test", "dry-run test blocks or events through the routes, offline", cmdTest},
		{"replay", "re-deliver logged events, through a running router or offline", cmdReplay},
		{"log", "inspect the event log (list, show, tail, stats) as JSON", cmdLog},
		{"dlq", "list and redrive dead-lettered events", cmdDLQ},
		{"reload", "make a running router load its configuration again", cmdReload},
		{"fmt", "rewrite HCL files in canonical form, comments kept", cmdFmt},
		{"guest", "scaffold a guest (new) or run one on an event (run)", cmdGuest},
		{"version", "print version information", cmdVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runNamed(ctx, commands(), args, usage, "router: unknown command", stdout, stderr)
}

// runNamed runs the command of cmds that args[0] names with the rest of args. Without one,
// or with an unknown one (reported after unknown), it prints usage to stderr; asked for help,
// to stdout.
func runNamed(ctx context.Context, cmds []command, args []string, usage func(io.Writer), unknown string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range cmds {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "%s %q\n\n", unknown, args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: router COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'router COMMAND --help' for a command's flags.")
}

// newFlags makes a command's flag set; parse reports --help (exit 0) and usage errors (exit 2).
func newFlags(name, synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("router "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: router %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func configFlag(fs *flag.FlagSet) *string {
	path := fs.String("c", "router.hcl", "configuration `FILE`")
	fs.StringVar(path, "config", "router.hcl", "the same as -c")
	return path
}
