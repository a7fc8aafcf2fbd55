package authplugin

import (
	"encoding/json"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// WriteOCIError writes distribution's error envelope for code (an errcode
// value such as "UNAUTHORIZED") with an explicit status. The token
// endpoint needs it: its answers (400 for a malformed request, 502 when the
// identity service is down) are not the statuses errcode ties to those
// codes. /v2 API answers use errcode.ServeJSON directly.
func WriteOCIError(w http.ResponseWriter, status int, code, message string, detail any) {
	e := errcode.ParseErrorCode(code).WithMessage(message)
	if detail != nil {
		e = e.WithDetail(detail)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(errcode.Errors{e})
}
