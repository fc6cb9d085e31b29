package httpapi

import "net/http"

// uiHandler serves the status page. This placeholder answers 404 until the
// page lands.
func uiHandler(Config) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "the status page is not built into this version; use /v1/status and /v1/jobs")
	})
}
