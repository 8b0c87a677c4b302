// Command etcd is the etcd server for the envtest tier, built from
// go.etcd.io/etcd/server/v3 because etcd's own main package lives in a module
// (go.etcd.io/etcd/v3) whose replace directives make it unusable as a dependency.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
