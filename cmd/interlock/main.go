package main

import (
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// Exit codes, for scripts.
const (
	exitOK          = 0 // the command did what it was asked
	exitFailed      = 1 // the node answered with a refusal or an error
	exitUsage       = 2 // the command line is wrong
	exitUnreachable = 3 // no answer from the node at all
)

const usage = `Usage: interlock [flags] COMMAND [ARG]

Reads and operates an Interlock cluster through the HTTP API a node serves
(cluster/httpapi). Flags may come before or after the command.

Read commands:
  status                     this node, the leader, Raft term and indexes, and members
  members                    the members: gossip state, Raft role, health (on the leader)
  jobs                       each job's schedule, next tick, last run, owner and token
  history JOB                the job's last runs cluster-wide, newest first
  locks                      held and awaited locks: holder, token, expiry, waiters

Write commands (the node must set EnableWrite; pass its Token):
  run JOB                    run JOB once now, on one of its nodes
  pause JOB                  stop JOB's ticks cluster-wide until resume
  resume JOB                 run JOB on its schedule again
  remove-peer NAME           remove a dead node from the Raft configuration
  transfer-leadership [NAME] move leadership to NAME, or to the best other voter;
                             send it to the leader

Flags:
  -addr URL     the node's API (default $INTERLOCK_ADDR, else http://127.0.0.1:8080)
  -token TOKEN  bearer token for write commands (default $INTERLOCK_TOKEN)
  -json         print the API's JSON instead of a table
  -timeout D    give up on the request after D (default 20s)

Exit codes:
  0  done
  1  the node refused the request or failed it (the reason is printed)
  2  usage error
  3  the node could not be reached
`

// options are the parsed flags.
type options struct {
	addr    string
	token   string
	json    bool
	timeout time.Duration
}

// usageError is a command line that cannot be run.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command: it parses args, sends the request, prints
// the answer to stdout and any error as one line to stderr, and returns
// the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	opts, cmd, cmdArgs, err := parse(args)
	if err != nil {
		if err == flag.ErrHelp {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "interlock: %v\n\n%s", err, usage)
		return exitUsage
	}
	c := &client{base: strings.TrimRight(opts.addr, "/"), token: opts.token, timeout: opts.timeout}
	err = dispatch(c, opts, cmd, cmdArgs, stdout)
	switch e := err.(type) {
	case nil:
		return exitOK
	case usageError:
		fmt.Fprintf(stderr, "interlock: %v\n\n%s", e, usage)
		return exitUsage
	case unreachableError:
		fmt.Fprintf(stderr, "interlock: %v\n", e)
		return exitUnreachable
	default:
		fmt.Fprintf(stderr, "interlock: %s\n", oneLine(err.Error()))
		return exitFailed
	}
}

// parse reads the flags, which may come before or after the command, and
// the command with its arguments.
func parse(args []string) (options, string, []string, error) {
	opts := options{addr: os.Getenv("INTERLOCK_ADDR"), token: os.Getenv("INTERLOCK_TOKEN")}
	if opts.addr == "" {
		opts.addr = "http://127.0.0.1:8080"
	}
	fs := flag.NewFlagSet("interlock", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&opts.addr, "addr", opts.addr, "")
	fs.StringVar(&opts.token, "token", opts.token, "")
	fs.BoolVar(&opts.json, "json", false, "")
	fs.DurationVar(&opts.timeout, "timeout", 20*time.Second, "")
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return opts, "", nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(words) == 0 {
		return opts, "", nil, fmt.Errorf("no command given")
	}
	u, err := url.Parse(opts.addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return opts, "", nil, fmt.Errorf("-addr %q is not an http:// or https:// URL of a node's API, such as http://10.0.0.5:8080", opts.addr)
	}
	if opts.timeout <= 0 {
		return opts, "", nil, fmt.Errorf("-timeout %s must be positive, such as 30s", opts.timeout)
	}
	return opts, words[0], words[1:], nil
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
