// Command application-cache is gointerlock's
// example/applicationCache/main.go ported to Interlock: only the import
// changed, and the optional LockVendor line (SingleApp) went, since
// leaving Cluster nil is Interlock's local mode. Like the original it
// serves on :8080 and shares expensiveQueryResult between the job and the
// handler without a lock, a data race kept here so the port stays exact;
// examples/cache shows the same program written for Interlock.
package main

import (
	"context"
	"fmt"
	gointerlock "github.com/interlockraft/interlock/scheduler"
	"log"
	"net/http"
	"time"
)

func main() {
	cnx := context.Background()

	var expensiveQueryResult = fmt.Sprintf("Last result at: %v", time.Now())

	//introduced the task
	go func() {
		//setting up the scheduler parameter
		var job = gointerlock.GoInterval{
			Interval: 5 * time.Second,
			Arg: func() {
				expensiveQueryResult = fmt.Sprintf("Last result at: %v", time.Now())
			},
		}

		// start the scheduler
		_ = job.Run(cnx)
	}()

	// http Server, access http://localhost:8080 from your browser
	http.HandleFunc("/", func(writer http.ResponseWriter, request *http.Request) {
		_, _ = fmt.Fprintln(writer, expensiveQueryResult)
	})
	fmt.Println("Server started at port 8080")
	log.Fatal(http.ListenAndServe(":8080", nil))
}
