// Command kstatus-check classifies Kubernetes objects with the kstatus library
// (sigs.k8s.io/cli-utils/pkg/kstatus/status), the one Flux, kpt and
// cli-utils' apply use to decide whether a resource is ready.
//
// It reads one JSON array of objects on stdin and writes one JSON array on
// stdout: for each object its status (Current, InProgress, Failed,
// Terminating, NotFound, Unknown) and kstatus' message. Used by
// tests/unit/test_kstatus.py; built by build.sh.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus-check: stdin is not a JSON array of objects: %v\n", err)
		os.Exit(2)
	}
	out := make([]verdict, 0, len(objects))
	for _, raw := range objects {
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil { // integers stay int64, as the API server sends them
			fmt.Fprintf(os.Stderr, "kstatus-check: not a Kubernetes object: %v\n", err)
			os.Exit(2)
		}
		res, err := status.Compute(u)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus-check: %s: %v\n", u.GetName(), err)
			os.Exit(1)
		}
		out = append(out, verdict{Name: u.GetName(), Status: res.Status.String(), Message: res.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
