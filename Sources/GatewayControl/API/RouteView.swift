// One published port as `GET /v1/routes` and `gatewayctl routes --json` show it: the Gateway's
// own routing-table row, which is already Codable in that shape.
import Gateway

public typealias RouteView = Route
