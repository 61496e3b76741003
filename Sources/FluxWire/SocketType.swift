import CZeroMQ

/// The libzmq socket patterns FluxWire offers.
public enum SocketType: Sendable, CustomStringConvertible {
    /// Exclusive pair (inproc pipes between threads, the socket monitor).
    case pair
    /// Strict request–reply client.
    case req
    /// Strict request–reply server (the ZAP handler).
    case rep
    /// Asynchronous client of a ROUTER (a worker's link to the coordinator).
    case dealer
    /// Addressed server: each received message starts with the peer's routing id (the coordinator).
    case router
    /// Fan-in receiver.
    case pull
    /// Fan-out sender, load-balanced over connected peers.
    case push

    /// The `ZMQ_*` constant.
    var rawValue: Int32 {
        switch self {
        case .pair: ZMQ_PAIR
        case .req: ZMQ_REQ
        case .rep: ZMQ_REP
        case .dealer: ZMQ_DEALER
        case .router: ZMQ_ROUTER
        case .pull: ZMQ_PULL
        case .push: ZMQ_PUSH
        }
    }

    /// The libzmq name, for messages.
    public var description: String {
        switch self {
        case .pair: "PAIR"
        case .req: "REQ"
        case .rep: "REP"
        case .dealer: "DEALER"
        case .router: "ROUTER"
        case .pull: "PULL"
        case .push: "PUSH"
        }
    }
}
