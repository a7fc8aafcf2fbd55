package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/labstack/echo/v4"
)

// decodeJSON reads a JSON body (at most 1 MiB) into v, refusing unknown
// fields so a typo is an error rather than a silent no-op.
func decodeJSON(c echo.Context, v any) error { return decodeJSONLimit(c, v, maxBody) }

// maxBody bounds every /v1 request body; sign-in bodies have a far
// smaller bound (maxLoginBody).
const maxBody = 1 << 20

func decodeJSONLimit(c echo.Context, v any, limit int64) error {
	body := http.MaxBytesReader(c.Response(), c.Request().Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.Is(err, io.EOF):
			return errorf(http.StatusBadRequest, "request body is empty; JSON expected")
		case errors.As(err, &mbe):
			return errorf(http.StatusRequestEntityTooLarge, "request body too large")
		default:
			return errorf(http.StatusBadRequest, fmt.Sprintf("malformed JSON: %v", err))
		}
	}
	if dec.More() {
		return errorf(http.StatusBadRequest, "malformed JSON: trailing data after object")
	}
	return nil
}
