#!/bin/sh
# Echo backend for the vsock tests (run by socat EXEC per connection): echo everything, then, after the
# client's end-of-file arrived, one more line. Its arrival proves the reply direction outlived the half-close.
cat
echo
echo backend-saw-eof
