// Package xmlxtest holds test support shared by the tests of the XML codecs
// that use hush.im/internal/xmlx (omemo, omemo/legacy): mellium-style
// encoding tables, where a value must marshal to exactly the given XML and
// that XML must unmarshal to exactly the value.
package xmlxtest

import (
	"encoding/xml"
	"fmt"
	"reflect"
	"testing"
)

// EncodingCase is one entry of an encoding table: Value marshals to
// exactly XML, and XML unmarshals to exactly Value.
type EncodingCase struct {
	Value any
	XML   string
}

// RunEncodingTests runs every case as a subtest named by its index,
// marshalling with xml.Marshal and unmarshalling into a new value of
// Value's type, compared with reflect.DeepEqual.
func RunEncodingTests(t *testing.T, cases []EncodingCase) {
	t.Helper()
	for i, tc := range cases {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			out, err := xml.Marshal(tc.Value)
			if err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if string(out) != tc.XML {
				t.Fatalf("marshal:\nwant %s\ngot  %s", tc.XML, out)
			}
			v := reflect.New(reflect.TypeOf(tc.Value))
			if err := xml.Unmarshal([]byte(tc.XML), v.Interface()); err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !reflect.DeepEqual(v.Elem().Interface(), tc.Value) {
				t.Fatalf("unmarshal:\nwant %#v\ngot  %#v", tc.Value, v.Elem().Interface())
			}
		})
	}
}
