/** A delivery that did not go out, and whether another attempt could succeed. */
export class DeliveryError extends Error {
  readonly retryable: boolean;

  constructor(message: string, retryable: boolean, options?: ErrorOptions) {
    super(message, options);
    this.name = 'DeliveryError';
    this.retryable = retryable;
  }
}
