package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/interlockraft/interlock/cluster/httpapi"
)

// dispatch runs one command.
func dispatch(c *client, opts options, cmd string, args []string, out io.Writer) error {
	want := func(n int, what string) error {
		if len(args) != n {
			if n == 0 {
				return usageError{fmt.Sprintf("%s takes no arguments, got %q", cmd, strings.Join(args, " "))}
			}
			return usageError{fmt.Sprintf("%s needs exactly one %s", cmd, what)}
		}
		return nil
	}
	switch cmd {
	case "status", "members":
		if err := want(0, ""); err != nil {
			return err
		}
		var st httpapi.Status
		body, err := c.get("/v1/status", &st)
		if err != nil || opts.json {
			return jsonOr(out, body, err)
		}
		if cmd == "status" {
			printStatus(out, st)
			fmt.Fprintln(out)
		}
		return printMembers(out, st.Members)
	case "jobs":
		if err := want(0, ""); err != nil {
			return err
		}
		var jobs []httpapi.Job
		body, err := c.get("/v1/jobs", &jobs)
		if err != nil || opts.json {
			return jsonOr(out, body, err)
		}
		return printJobs(out, jobs)
	case "history":
		if err := want(1, "JOB"); err != nil {
			return err
		}
		var runs []httpapi.Run
		body, err := c.get("/v1/jobs/"+url.PathEscape(args[0])+"/history", &runs)
		if err != nil || opts.json {
			return jsonOr(out, body, err)
		}
		return printHistory(out, args[0], runs)
	case "locks":
		if err := want(0, ""); err != nil {
			return err
		}
		var locks []httpapi.Lock
		body, err := c.get("/v1/locks", &locks)
		if err != nil || opts.json {
			return jsonOr(out, body, err)
		}
		return printLocks(out, locks)
	case "run", "pause", "resume":
		if err := want(1, "JOB"); err != nil {
			return err
		}
		return post(c, opts, out, "/v1/jobs/"+url.PathEscape(args[0])+"/"+cmd)
	case "remove-peer":
		if err := want(1, "NAME (the node to remove)"); err != nil {
			return err
		}
		return post(c, opts, out, "/v1/peers/"+url.PathEscape(args[0])+"/remove")
	case "transfer-leadership":
		if len(args) > 1 {
			return usageError{"transfer-leadership takes at most one NAME"}
		}
		path := "/v1/leader/transfer"
		if len(args) == 1 {
			path += "?to=" + url.QueryEscape(args[0])
		}
		return post(c, opts, out, path)
	case "help":
		_, err := fmt.Fprint(out, usage)
		return err
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// jsonOr prints body for -json, or passes err on.
func jsonOr(out io.Writer, body []byte, err error) error {
	if err != nil {
		return err
	}
	return printJSON(out, body)
}

// post sends a write and prints what the node did.
func post(c *client, opts options, out io.Writer, path string) error {
	body, err := c.do(http.MethodPost, path)
	if err != nil {
		return err
	}
	if opts.json {
		return printJSON(out, body)
	}
	var act httpapi.Action
	if err := json.Unmarshal(body, &act); err != nil {
		return fmt.Errorf("POST %s: the answer is not the API's JSON: %v", path, err)
	}
	_, err = fmt.Fprintf(out, "%s: %s\n", act.Node, act.Message)
	return err
}

func table(out io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
}

func printStatus(out io.Writer, st httpapi.Status) {
	ready := "yes"
	if !st.Ready {
		ready = "no: " + st.NotReady
	}
	leader := st.Leader
	if leader == "" {
		leader = "(none known)"
	}
	w := table(out)
	fmt.Fprintf(w, "Node:\t%s (%s)\n", st.Node, st.Role)
	fmt.Fprintf(w, "Cluster:\t%s\n", st.Cluster)
	fmt.Fprintf(w, "Leader:\t%s\n", leader)
	fmt.Fprintf(w, "Term:\t%d\n", st.Term)
	fmt.Fprintf(w, "Index:\tcommit %d, applied %d, last %d\n", st.CommitIndex, st.AppliedIndex, st.LastIndex)
	fmt.Fprintf(w, "Ready:\t%s\n", ready)
	w.Flush()
}

func printMembers(out io.Writer, members []httpapi.Member) error {
	w := table(out)
	fmt.Fprintln(w, "NAME\tROLE\tGOSSIP\tHEALTHY\tLAST CONTACT\tRAFT ADDR\tGOSSIP ADDR")
	for _, m := range members {
		healthy, contact := "-", "-"
		if m.Healthy != nil {
			healthy = map[bool]string{true: "yes", false: "no"}[*m.Healthy]
		}
		if m.LastContactSeconds != nil {
			contact = seconds(*m.LastContactSeconds)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Role, dash(m.Gossip), healthy, contact, dash(m.RaftAddr), dash(m.GossipAddr))
	}
	return w.Flush()
}

func printJobs(out io.Writer, jobs []httpapi.Job) error {
	w := table(out)
	fmt.Fprintln(w, "NAME\tSCHEDULE\tSTATE\tNEXT\tLAST RUN\tNODE\tTOKEN\tRESULT")
	now := time.Now()
	for _, j := range jobs {
		state := "active"
		switch {
		case j.Paused:
			state = "paused"
		case !j.Eligible:
			state = "not here"
		}
		next, last, node, token, result := "-", "-", "-", "-", "-"
		if j.Next != nil {
			next = "in " + ago(j.Next.Sub(now))
		}
		if r := j.LastRun; r != nil {
			last, node, token, result = ago(now.Sub(r.At))+" ago", r.Node, fmt.Sprint(r.Token), r.Result
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Schedule, state, next, last, node, token, result)
	}
	return w.Flush()
}

func printHistory(out io.Writer, job string, runs []httpapi.Run) error {
	if len(runs) == 0 {
		_, err := fmt.Fprintf(out, "no finished runs of %s recorded yet\n", job)
		return err
	}
	w := table(out)
	fmt.Fprintln(w, "AT\tNODE\tTOKEN\tTICK\tDURATION\tRESULT\tERROR")
	for _, r := range runs {
		tick := fmt.Sprint(r.Tick)
		if r.Tick < 0 {
			tick = "run-now"
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.At.Local().Format("2006-01-02 15:04:05.000"), r.Node, r.Token, tick, seconds(r.DurationSeconds), r.Result, dash(oneLine(r.Error)))
	}
	return w.Flush()
}

func printLocks(out io.Writer, locks []httpapi.Lock) error {
	if len(locks) == 0 {
		_, err := fmt.Fprintln(out, "no locks held or awaited")
		return err
	}
	w := table(out)
	fmt.Fprintln(w, "NAME\tHOLDER\tTOKEN\tEXPIRES\tWAITERS")
	now := time.Now()
	for _, l := range locks {
		expires := "-"
		if l.Expires != nil {
			expires = "in " + ago(l.Expires.Sub(now))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", l.Name, dash(l.Holder), l.Token, expires, dash(strings.Join(l.Waiters, ",")))
	}
	return w.Flush()
}

// ago prints a duration for a table: to the millisecond below ten
// seconds, to the second above.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < 10*time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func seconds(s float64) string { return ago(time.Duration(s * float64(time.Second))) }

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
