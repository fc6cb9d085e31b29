// Command interlock is the operator's command line for an Interlock
// cluster. It talks to the HTTP API that an application mounts with
// cluster/httpapi: it reads status, members, jobs, run history and locks,
// and, where the node enables writes, runs, pauses and resumes jobs,
// removes a dead peer and moves leadership. Run it without arguments for
// its usage, which lists the commands, flags and exit codes.
package main
