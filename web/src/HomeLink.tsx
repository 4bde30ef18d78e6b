/** "Almanac", linking home inside the app. */
export function HomeLink({ navigate }: { navigate: (to: string) => void }) {
  return (
    <a
      href="/"
      className="home"
      onClick={(e) => {
        e.preventDefault();
        navigate('/');
      }}
    >
      Almanac
    </a>
  );
}
