// Command basic-local is gointerlock's example/basicLocal/main.go ported to
// Interlock: only the import changed, and the optional LockVendor line
// (SingleApp) went, since leaving Cluster nil is Interlock's local mode.
// The migration test in examples/ builds it and checks that it behaves as
// gointerlock's does: the first call one Interval after Run, then one
// every Interval, for the 10 seconds the program lives.
package main

import (
	"context"
	"fmt"
	gointerlock "github.com/interlockraft/interlock/scheduler"
	"log"
	"time"
)

func myJob() {
	fmt.Println(time.Now(), " - called")
}

func main() {
	cnx := context.Background()

	var job = gointerlock.GoInterval{
		Interval: 2 * time.Second,
		Arg:      myJob,
	}

	//test cron
	go func() {
		err := job.Run(cnx)
		if err != nil {
			log.Fatalf("Error: %s", err)
		}
	}()

	//example: just run it for 10 second before application exits
	time.Sleep(10 * time.Second)
}
