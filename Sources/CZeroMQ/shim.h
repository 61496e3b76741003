#include <zmq.h>
// Debian's libzmq 4.3.4 declares ZMQ_ZAP_ENFORCE_DOMAIN only under its draft API.
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif
