// The REST contract's representations (conveyor/domain/rest.py), as the edge answers them.

export type Role = "user" | "admin";
export type UserStatus = "active" | "disabled";
export type OrderStatus = "pending" | "confirmed" | "rejected" | "cancelled";
export type RejectionReason = "out_of_stock" | "payment_declined" | "payment_unavailable" | "timed_out";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: "bearer";
  expires_in: number;
}

export interface User {
  id: string;
  email: string;
  email_verified: boolean;
  name: string;
  role: Role;
  status: UserStatus;
  created_at: string;
  updated_at: string;
}

export interface Product {
  id: string;
  sku: string;
  name: string;
  description: string;
  price: string;
  currency: string;
  category: string;
  stock: { available: number };
}

export interface Recommendation {
  product: Product;
  score: number;
}

export interface OrderItem {
  product_id: string;
  quantity: number;
  price: string;
  subtotal: string;
}

export interface Order {
  id: string;
  user_id: string;
  status: OrderStatus;
  reason: RejectionReason | null;
  items: OrderItem[];
  total: string;
  currency: string;
  created_at: string;
  updated_at: string;
}

export interface Notification {
  id: string;
  order_id: string;
  event: "OrderConfirmed" | "OrderRejected" | "OrderCancelled";
  subject: string;
  sent_at: string;
}

export interface OrderStatistics {
  minutes: number;
  since: string;
  placed: number;
  per_minute: { minute: string; placed: number }[];
  by_status: Partial<Record<OrderStatus, number>>;
  rejections: { reason: RejectionReason; count: number }[];
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
}

export interface CancelAccepted {
  order_id: string;
  status: OrderStatus;
}
