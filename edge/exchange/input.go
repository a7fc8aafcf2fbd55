package exchange

import (
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/reference"
)

// NoBodyForms makes parsing a request body as a form impossible below it:
// the form is the query string, already parsed. distribution's dispatcher
// calls r.FormValue("from") before its access controller runs; on a
// multipart body that would spool the parts to $TMPDIR on a copy of the
// request net/http never cleans up, and on a urlencoded body it would
// consume the body itself. No /v2 route takes a form body.
func NoBodyForms(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		r.Form = q
		r.PostForm = url.Values{}
		r.MultipartForm = &multipart.Form{Value: map[string][]string{}, File: map[string][]*multipart.FileHeader{}}
		next.ServeHTTP(w, r)
	})
}

// ErrorCodeContentTypeInvalid answers a blob chunk sent with a media type
// other than application/octet-stream (distribution answers 500).
var ErrorCodeContentTypeInvalid = errcode.Register("mcr", errcode.ErrorDescriptor{
	Value:          "CONTENT_TYPE_INVALID",
	Message:        "blob data must be sent as application/octet-stream",
	Description:    "A blob upload request carried a Content-Type other than application/octet-stream.",
	HTTPStatusCode: http.StatusBadRequest,
})

var (
	anchoredName = regexp.MustCompile(`^` + reference.NameRegexp.String() + `$`)
	anchoredTag  = regexp.MustCompile(`^` + reference.TagRegexp.String() + `$`)
	contentRange = regexp.MustCompile(`^([0-9]+)-([0-9]+)$`) // distribution's format (no "bytes=")
)

// validRange reports whether cr is a Content-Range distribution can parse.
func validRange(cr string) bool {
	m := contentRange.FindStringSubmatch(cr)
	if m == nil {
		return false
	}
	for _, n := range m[1:] {
		if _, err := strconv.ParseInt(n, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// CheckInput answers malformed client input with a 4xx before distribution
// would turn it into a 500 that names a storage path: a pagination `last`
// that is not a repository name or tag, a blob chunk's Content-Type or
// Content-Range in the wrong form. It reads headers and the query only.
func CheckInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkInput(From(r.Context()).Route, r); err != nil {
			_ = errcode.ServeJSON(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkInput(rt Route, r *http.Request) error {
	q := r.URL.Query()
	switch rt.Name {
	case v2.RouteNameCatalog:
		if last := q.Get("last"); last != "" && !anchoredName.MatchString(last) {
			return errcode.ErrorCodeNameInvalid.WithMessage("last is not a repository name")
		}
	case v2.RouteNameTags:
		if last := q.Get("last"); last != "" && !anchoredTag.MatchString(last) {
			return errcode.ErrorCodeTagInvalid.WithMessage("last is not a tag")
		}
	case v2.RouteNameBlobUploadChunk, v2.RouteNameBlobUpload:
		if r.Method != http.MethodPatch && r.Method != http.MethodPut && r.Method != http.MethodPost {
			return nil
		}
		// distribution compares the header verbatim.
		if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/octet-stream" && r.Method == http.MethodPatch {
			return ErrorCodeContentTypeInvalid.WithDetail(map[string]string{"content_type": ct})
		}
		if cr := r.Header.Get("Content-Range"); cr != "" && !validRange(cr) {
			return errcode.ErrorCodeRangeInvalid.WithMessage("Content-Range must be <start>-<end>")
		}
	}
	return nil
}
