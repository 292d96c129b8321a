"""moto's server (the venv's moto[server]) answering one request at a time, as the DynamoDB that
the DynamoDB tests run on: python .ci/moto-dynamodb.py <port>  (listens on 127.0.0.1).

`moto_server` serves each request in a thread of its own, and its DynamoDB is not safe under that:
a `TransactWriteItems` starts by copying every table it touches and, when cancelled, puts those
copies back, undoing whatever other clients wrote to the table meanwhile; and a condition is checked
and its write applied without a lock. Real DynamoDB does neither: each single-item write and each
transaction is atomic. Processed one at a time, every call here is atomic too; concurrency between
calls (another writer moving a counter between `increment`'s read and its conditional write) is
what remains, as on DynamoDB.

Only the processing is one at a time, not the connections: each connection has a thread of its
own, a request's body is read in full before it waits for its turn, and its answer is written after
it. A server that served one connection at a time (`threaded=False`, as this file did before) was
held by any client that kept a connection open and stopped talking: the pause suite freezes a node
(SIGSTOP) that holds a kept-alive connection here, and every other node then waited for it, for
ever. Real DynamoDB is never held by one frozen client, so neither is this.
"""

import io
import sys
import threading

from moto.server import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import run_simple

moto = DomainDispatcherApplication(create_backend_app)
turn = threading.Lock()


def one_at_a_time(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read(length))
    with turn:
        answer = moto(environ, start_response)
        try:
            body = b"".join(answer)
        finally:
            if hasattr(answer, "close"):
                answer.close()
    return [body]


run_simple("127.0.0.1", int(sys.argv[1]), one_at_a_time, threaded=True)
