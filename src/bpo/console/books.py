"""placeholder"""
route_handlers: list[object] = []
