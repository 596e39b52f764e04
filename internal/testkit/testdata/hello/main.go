// Command hello prints its arguments: a package for testkit's Build test.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println(os.Args[1:]) }
