package authplugin

import (
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"

	"git.wntrmute.dev/kyle/mcr/edge/exchange"
)

// WriteOCIError writes distribution's error envelope for code (an errcode
// value such as "UNAUTHORIZED") with an explicit status, through the
// exchange's one error writer. The token endpoint needs it: its answers
// (400 for a malformed request, 502 when the identity service is down) are
// not the statuses errcode ties to those codes.
func WriteOCIError(w http.ResponseWriter, status int, code, message string, detail any) {
	e := errcode.ParseErrorCode(code).WithMessage(message)
	if detail != nil {
		e = e.WithDetail(detail)
	}
	exchange.ServeError(w, exchange.WithStatus(status, e))
}
